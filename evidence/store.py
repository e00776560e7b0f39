"""Where evidence bytes live: a content-addressed blob store with per-ticket holds.

Blobs are keyed by their sha256, so a worker on any host asks for exactly
the bytes a ticket referenced, and every read is checked against that hash
as it streams (``verified``): corrupted or substituted content is never
handed on as evidence. Holds say which blobs a ticket keeps, and until when;
the sweep (``evidence.retention``) deletes what no hold keeps.

Everything here is blocking and streams in chunks: callers on an event loop
run it in a thread, and no call holds a whole file in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

CHUNK = 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class EvidenceError(Exception):
    """Something is wrong with stored evidence; the message names the blob."""


class EvidenceMissingError(EvidenceError):
    """The blob is not in the store (swept after its retention, or never stored)."""


class EvidenceCorruptError(EvidenceError):
    """The bytes read do not match the sha256 (or size) they are stored under."""


class StoreUnavailableError(EvidenceError):
    """The store did not answer or failed: a retry later may succeed."""


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    modified: float  # seconds since the epoch


@dataclass
class Hold:
    """A ticket's claim on blobs until ``keep_until``; one per submission."""

    ticket_id: str
    keep_until: datetime
    blobs: set[str] = field(default_factory=set)
    created: datetime = field(default_factory=lambda: datetime.now(tz=UTC))
    hold_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "ticket_id": self.ticket_id,
                "hold_id": self.hold_id,
                "created": self.created.isoformat(),
                "keep_until": self.keep_until.isoformat(),
                "blobs": sorted(self.blobs),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Hold:
        raw = json.loads(data)
        return cls(
            ticket_id=str(raw["ticket_id"]),
            hold_id=str(raw["hold_id"]),
            created=datetime.fromisoformat(raw["created"]),
            keep_until=datetime.fromisoformat(raw["keep_until"]),
            blobs={str(b) for b in raw["blobs"] if SHA256.match(str(b))},
        )


@runtime_checkable
class EvidenceStore(Protocol):
    """Content-addressed blobs and the holds that keep them.

    Implementations: ``LocalStore`` (a directory every worker can read),
    ``evidence.s3.S3Store`` (an S3-compatible bucket) and ``MemoryStore``
    (for tests). ``put`` and ``read`` raise ``StoreUnavailableError`` when the
    store itself fails (worth a retry), ``EvidenceMissingError`` and
    ``EvidenceCorruptError`` when retrying cannot help.
    """

    @property
    def description(self) -> str:
        """Where the evidence lives, for messages ("directory /x", "s3://b/p")."""
        ...

    def put(self, sha256: str, size: int, source: BinaryIO) -> None:
        """Store ``size`` bytes read from ``source`` under ``sha256``, verifying both."""
        ...

    def size(self, sha256: str) -> int | None:
        """The stored blob's size, or None when it is not there."""
        ...

    def read(self, sha256: str, size: int) -> Iterator[bytes]:
        """The blob's bytes in chunks, verified against ``sha256`` and ``size``."""
        ...

    def delete(self, sha256: str) -> None: ...

    def blobs(self) -> Iterator[BlobInfo]: ...

    def put_hold(self, hold: Hold) -> None: ...

    def holds(self) -> Iterator[Hold]: ...

    def delete_hold(self, hold: Hold) -> None: ...


def check_sha256(sha256: str) -> str:
    if not SHA256.match(sha256):
        raise EvidenceError(f"not a sha256: {sha256[:80]!r}")
    return sha256


def verified(sha256: str, size: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Pass ``chunks`` through, raising ``EvidenceCorruptError`` unless they hash to ``sha256``.

    A mismatch is raised at the point it is known (too many bytes as soon as
    they arrive, a wrong hash at the end), so a consumer streaming into a
    container aborts before the bad stream completes.
    """
    digest = hashlib.sha256()
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            raise EvidenceCorruptError(f"blob {sha256[:12]} is larger than its {size} bytes")
        digest.update(chunk)
        yield chunk
    if seen != size:
        raise EvidenceCorruptError(f"blob {sha256[:12]} has {seen} bytes, not {size}")
    if digest.hexdigest() != sha256:
        raise EvidenceCorruptError(f"blob {sha256[:12]} does not match its sha256")


def read_exactly(source: BinaryIO, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``source`` in chunks (fewer if it ends early)."""
    left = size
    while left > 0:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


class LocalStore:
    """Blobs as files: ``<root>/blobs/<sha[:2]>/<sha>``; holds as ``<root>/holds/<id>.json``.

    Writes go to ``<root>/tmp`` and are renamed into place once verified and
    synced, so a reader never sees a partial blob and a crash leaves only a
    temporary file (removed by the sweep). Several machines can share it
    over a network file system; for object storage use ``S3Store``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return f"directory {self.root}"

    def _blob(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "blobs" / sha256[:2] / sha256

    def _dirs(self) -> None:
        try:
            for sub in ("blobs", "holds", "tmp"):
                # Customers' files: the service's user (and its group, for workers
                # sharing the store), never every local user.
                (self.root / sub).mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"evidence {self.description}: {exc}") from exc

    def put(self, sha256: str, size: int, source: BinaryIO) -> None:
        target = self._blob(sha256)
        if target.exists():
            # Refresh its age, so a sweep running now does not take it from the
            # ticket whose hold is being written.
            os.utime(target)
            return
        self._dirs()
        try:
            target.parent.mkdir(mode=0o750, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix="put-")
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in verified(sha256, size, read_exactly(source, size)):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o440)  # read-only; mkstemp made it owner-only until now
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreUnavailableError(f"evidence {self.description}: {exc}") from exc

    def size(self, sha256: str) -> int | None:
        try:
            return self._blob(sha256).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailableError(f"evidence {self.description}: {exc}") from exc

    def read(self, sha256: str, size: int) -> Iterator[bytes]:
        path = self._blob(sha256)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise EvidenceMissingError(f"blob {sha256[:12]} is not in {self.description}") from None
        except OSError as exc:
            raise StoreUnavailableError(f"evidence {self.description}: {exc}") from exc
        return _closing(handle, verified(sha256, size, iter(lambda: handle.read(CHUNK), b"")))

    def delete(self, sha256: str) -> None:
        self._blob(sha256).unlink(missing_ok=True)

    def blobs(self) -> Iterator[BlobInfo]:
        base = self.root / "blobs"
        if not base.is_dir():
            return
        for sub in sorted(base.iterdir()):
            for path in sorted(sub.iterdir()) if sub.is_dir() else []:
                if SHA256.match(path.name):
                    stat = path.stat()
                    yield BlobInfo(path.name, stat.st_size, stat.st_mtime)

    def put_hold(self, hold: Hold) -> None:
        self._dirs()
        tmp = self.root / "tmp" / f"hold-{hold.hold_id}"
        try:
            tmp.write_bytes(hold.to_json())
            os.replace(tmp, self.root / "holds" / f"{hold.hold_id}.json")
        except OSError as exc:
            raise StoreUnavailableError(f"evidence {self.description}: {exc}") from exc

    def holds(self) -> Iterator[Hold]:
        base = self.root / "holds"
        if not base.is_dir():
            return
        for path in sorted(base.glob("*.json")):
            try:
                yield Hold.from_json(path.read_bytes())
            except FileNotFoundError:
                continue  # released meanwhile

    def delete_hold(self, hold: Hold) -> None:
        (self.root / "holds" / f"{hold.hold_id}.json").unlink(missing_ok=True)

    def stale_temporaries(self, older_than: float) -> int:
        """Remove temporary files of writes that never finished; how many."""
        removed = 0
        base = self.root / "tmp"
        for path in base.iterdir() if base.is_dir() else []:
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _closing(handle: BinaryIO, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        handle.close()


class MemoryStore:
    """An in-memory store for tests, with the real stores' verification and errors.

    ``fail_next`` makes the next that many calls raise ``StoreUnavailableError``
    (a store hiccup); ``corrupt`` flips a stored blob's bytes.
    """

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, float]] = {}
        self._holds: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.fail_next = 0
        self.reads = 0

    @property
    def description(self) -> str:
        return "memory"

    def _hiccup(self) -> None:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise StoreUnavailableError("evidence memory: connection refused (simulated)")

    def put(self, sha256: str, size: int, source: BinaryIO) -> None:
        check_sha256(sha256)
        self._hiccup()
        data = b"".join(verified(sha256, size, read_exactly(source, size)))
        with self._lock:
            self._blobs[sha256] = (data, time.time())

    def size(self, sha256: str) -> int | None:
        self._hiccup()
        blob = self._blobs.get(sha256)
        return None if blob is None else len(blob[0])

    def read(self, sha256: str, size: int) -> Iterator[bytes]:
        self._hiccup()
        blob = self._blobs.get(sha256)
        if blob is None:
            raise EvidenceMissingError(f"blob {sha256[:12]} is not in {self.description}")
        self.reads += 1
        data = blob[0]
        return verified(sha256, size, (data[i : i + CHUNK] for i in range(0, len(data), CHUNK)))

    def delete(self, sha256: str) -> None:
        with self._lock:
            self._blobs.pop(sha256, None)

    def blobs(self) -> Iterator[BlobInfo]:
        with self._lock:
            items = list(self._blobs.items())
        for sha256, (data, modified) in sorted(items):
            yield BlobInfo(sha256, len(data), modified)

    def put_hold(self, hold: Hold) -> None:
        self._hiccup()
        with self._lock:
            self._holds[hold.hold_id] = hold.to_json()

    def holds(self) -> Iterator[Hold]:
        with self._lock:
            items = list(self._holds.values())
        for data in items:
            yield Hold.from_json(data)

    def delete_hold(self, hold: Hold) -> None:
        with self._lock:
            self._holds.pop(hold.hold_id, None)

    def corrupt(self, sha256: str) -> None:
        with self._lock:
            data, modified = self._blobs[sha256]
            self._blobs[sha256] = (bytes([data[0] ^ 1]) + data[1:], modified)

    def age(self, seconds: float) -> None:
        """Make every blob look ``seconds`` older (for sweep tests)."""
        with self._lock:
            self._blobs = {k: (d, m - seconds) for k, (d, m) in self._blobs.items()}


__all__ = [
    "CHUNK",
    "BlobInfo",
    "EvidenceCorruptError",
    "EvidenceError",
    "EvidenceMissingError",
    "EvidenceStore",
    "Hold",
    "LocalStore",
    "MemoryStore",
    "StoreUnavailableError",
    "check_sha256",
    "read_exactly",
    "verified",

]
