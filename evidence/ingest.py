"""Evidence in: check, scan, store and unpack a ticket's uploads; return their references.

The command line, the HTTP API and Python callers all come through
``ingest``, so every way a ticket enters gets the same limits and the same
one-line messages, and none of them ever puts file content into a Hatchet
payload. Limits that can be judged without reading (names, count, sizes)
are checked before a byte is stored, so a refused submit stores nothing.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from agent.attachments import Attachment, UnpackedFile, is_valid_name, printable
from agent.validation import INPUT_ERROR
from evidence.archives import ArchiveLimits, unpack
from evidence.limits import EvidenceLimits
from evidence.scan import Facts, Scanner, guess_media_type
from evidence.store import CHUNK, EvidenceStore, Hold

MEMBER_PREVIEWS = 50
MEMBER_HEAD_BYTES = 512
MEMBER_TAIL_BYTES = 256


class EvidenceRefusedError(ValueError):
    """An upload breaks a rule; the message names the file and the limit."""

    kind = INPUT_ERROR

    def __init__(self, message: str, name: str | None = None, too_large: bool = False) -> None:
        super().__init__(message)
        self.name = name
        self.too_large = too_large


@dataclass
class Upload:
    """One file as it arrives: its attachment name and a seekable binary stream."""

    name: str
    file: BinaryIO
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            self.file.seek(0, os.SEEK_END)
            self.size = self.file.tell()
        self.file.seek(0)

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> Upload:
        return cls(name, io.BytesIO(data), len(data))


@dataclass
class IngestResult:
    attachments: list[Attachment]
    hold: Hold
    warnings: list[str] = field(default_factory=list)


def check_uploads(uploads: list[tuple[str, int]], limits: EvidenceLimits) -> None:
    """Names, count and sizes (known before reading); raises ``EvidenceRefusedError``."""
    if len(uploads) > limits.max_files:
        raise EvidenceRefusedError(
            f"{len(uploads)} attachments; the limit is {limits.max_files}", too_large=True
        )
    seen: set[str] = set()
    total = 0
    for name, size in uploads:
        if not is_valid_name(name):
            raise EvidenceRefusedError(
                f"attachment name {name[:200]!r} is not allowed: rename the file to start with a "
                "letter or digit and use at most 128 letters, digits, '.', '_' or '-'",
                name,
            )
        if name in seen:
            raise EvidenceRefusedError(f"duplicate attachment names: {name}", name)
        seen.add(name)
        if size > limits.max_file_bytes:
            raise EvidenceRefusedError(
                f"attachment {name} is {size} bytes; the limit is {limits.max_file_bytes}",
                name,
                too_large=True,
            )
        total += size
    if total > limits.max_ticket_bytes:
        raise EvidenceRefusedError(
            f"attachments total {total} bytes; the limit is {limits.max_ticket_bytes}",
            too_large=True,
        )
    directories = {name + ".d" for name, _ in uploads}
    clash = sorted(directories & seen)
    if clash:
        raise EvidenceRefusedError(
            f"attachment name {clash[0]} is taken by the unpacked archive {clash[0][:-2]}",
            clash[0],
        )


def preview_text(facts: Facts) -> tuple[str, str]:
    """(head, tail) as text; a tail starts at a line boundary when it has one."""
    if facts.binary:
        return "", ""
    tail = facts.tail
    if tail and len(facts.head) + len(tail) < facts.size and b"\n" in tail[:-1]:
        tail = tail[tail.index(b"\n") + 1 :]
    return printable(facts.head), printable(tail)


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def ingest(
    store: EvidenceStore,
    uploads: list[Upload],
    limits: EvidenceLimits,
    *,
    ticket_id: str,
    retention: timedelta,
    now: datetime | None = None,
    spool_dir: Path | None = None,
) -> IngestResult:
    """Store every upload (and what its archives unpack to) and hold it for the ticket.

    Raises ``EvidenceRefusedError`` for input that breaks a limit (before
    anything is stored) and ``StoreUnavailableError`` when the store fails.
    Blobs stored before a failure are held by nothing and go with the sweep.
    """
    check_uploads([(u.name, u.size) for u in uploads], limits)
    hold = Hold(ticket_id=ticket_id, keep_until=(now or datetime.now(tz=UTC)) + retention)
    allowance = ArchiveLimits(
        max_member_bytes=limits.max_file_bytes,
        bytes_left=limits.max_unpacked_bytes,
        files_left=limits.max_unpacked_files,
        max_ratio=limits.max_compression_ratio,
    )
    attachments = []
    warnings = []
    members: list[UnpackedFile] = []

    def store_member(path: str, stream: Iterator[bytes]) -> UnpackedFile:
        # Previews for the ticket's first members only: the ticket stays small.
        member = _store_member(store, path, stream, spool_dir, len(members) < MEMBER_PREVIEWS)
        members.append(member)
        hold.blobs.add(member.sha256)
        return member

    for upload in uploads:
        upload.file.seek(0)
        scanner = Scanner(limits.preview_head_bytes, limits.preview_tail_bytes)
        for chunk in _chunks(upload.file):
            scanner.update(chunk)
        facts = scanner.facts()
        if facts.size != upload.size:
            raise EvidenceRefusedError(f"attachment {upload.name} changed while it was read")
        upload.file.seek(0)
        store.put(facts.sha256, facts.size, upload.file)
        hold.blobs.add(facts.sha256)
        head, tail = preview_text(facts)
        held_before = set(hold.blobs)
        listing = unpack(upload.name, upload.file, upload.size, allowance, store_member)
        if listing is not None:
            if listing.error is None:
                allowance.bytes_left -= sum(f.size for f in listing.files)
                allowance.files_left -= len(listing.files)
            else:
                warnings.append(f"{upload.name}: {listing.error}")
                # Members stored before the refusal are not this ticket's.
                hold.blobs = held_before
            if listing.skipped_count:
                warnings.append(
                    f"{upload.name}: {listing.skipped_count} member(s) skipped, first "
                    f"{listing.skipped[0]}"
                )
        attachments.append(
            Attachment(
                name=upload.name,
                media_type=guess_media_type(upload.name, facts.binary),
                size=facts.size,
                sha256=facts.sha256,
                lines=facts.lines,
                head=head,
                tail=tail,
                archive=listing,
            )
        )
    store.put_hold(hold)
    return IngestResult(attachments=attachments, hold=hold, warnings=warnings)


def _store_member(
    store: EvidenceStore,
    path: str,
    stream: Iterator[bytes],
    spool_dir: Path | None,
    with_preview: bool,
) -> UnpackedFile:
    """Spool one member to a temporary file while scanning it, then store it by hash."""
    scanner = Scanner(
        MEMBER_HEAD_BYTES if with_preview else 0, MEMBER_TAIL_BYTES if with_preview else 0
    )
    with tempfile.TemporaryFile(dir=spool_dir, prefix="member-") as spool:
        for chunk in stream:
            scanner.update(chunk)
            spool.write(chunk)
        facts = scanner.facts()
        spool.seek(0)
        store.put(facts.sha256, facts.size, spool)
    head, tail = preview_text(facts)
    return UnpackedFile(
        path=path,
        media_type=guess_media_type(path, facts.binary),
        size=facts.size,
        sha256=facts.sha256,
        lines=facts.lines,
        head=head,
        tail=tail,
    )


def ingest_bytes(
    store: EvidenceStore,
    files: dict[str, bytes],
    *,
    ticket_id: str,
    limits: EvidenceLimits | None = None,
    retention: timedelta = timedelta(days=30),
) -> list[Attachment]:
    """For Python callers and tests with content in memory: ``ingest`` of ``{name: bytes}``."""
    uploads = [Upload.from_bytes(name, data) for name, data in files.items()]
    return ingest(
        store, uploads, limits or EvidenceLimits(), ticket_id=ticket_id, retention=retention
    ).attachments


def release(store: EvidenceStore, hold: Hold) -> None:
    """Drop a hold whose ticket never started (the engine refused it)."""
    store.delete_hold(hold)
