"""Unpacking customer archives (.zip, .tar, .tar.gz/.tgz, .gz) safely, as a stream.

Nothing is ever extracted to a path taken from the archive: each member is
read as a stream and handed to a callback that stores it by hash, so path
traversal cannot happen. Still, the listing must be something a sandbox can
lay out, so members are kept only as plain relative paths of printable
components; links, devices, FIFOs and unsafe paths are skipped and listed
as skipped. The caps are enforced while bytes stream, not from what the
archive declares: unpacked bytes and files per ticket, one member's size,
and the compression ratio (a bomb is refused with the number that gave it
away). A refused or broken archive is not unpacked at all; the archive
itself stays evidence.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import stat
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, BinaryIO

from agent.attachments import UNPACKED_SUFFIX, ArchiveListing, UnpackedFile

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1024 * 1024
# Ratios are judged only past this many unpacked bytes: tiny files of
# repeated characters compress absurdly well and are harmless.
RATIO_FLOOR = 1024 * 1024
MAX_DEPTH = 16
MAX_PATH_BYTES = 1024
MAX_COMPONENT_BYTES = 255
# Members (directories, links, devices, unsafe paths) an archive may have
# besides the files it may unpack to: each costs a header to parse and memory
# to list (zipfile and tarfile keep them all), and no real bundle has so many.
MAX_OTHER_MEMBERS = 10_000
# What one zip directory entry may take: its fixed part, a path at the
# longest kept, and room for extra fields (timestamps, Zip64 sizes).
ZIP_ENTRY_BYTES = 46 + MAX_PATH_BYTES + 256
# A tar header extension (a GNU long name or link, a pax header) is read whole
# into memory; real ones hold a path and a few attributes.
MAX_HEADER_EXTENSION_BYTES = 64 * 1024
# What a tar stream may hold besides the bytes of the files kept: headers,
# padding and skipped members, per member allowed, on top of RATIO_FLOOR.
TAR_BYTES_PER_MEMBER = 1024
_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# (path, stream of the member's bytes) -> what was stored for it
StoreMember = Callable[[str, Iterator[bytes]], UnpackedFile]


class ArchiveRefusedError(Exception):
    """The archive is broken or breaks a cap: nothing of it is unpacked."""


@dataclass
class ArchiveLimits:
    """What is left of the ticket's unpacking allowance, and the per-file caps."""

    max_member_bytes: int
    bytes_left: int
    files_left: int
    max_ratio: int


def archive_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    for kind in ("zip", "tar", "gz"):
        if lower.endswith("." + kind):
            return kind
    return None


def member_path(raw: str) -> tuple[str | None, str]:
    """(the safe relative path, '') or (None, why it is unsafe)."""
    if "\x00" in raw:
        return None, "NUL in the name"
    if "\\" in raw:
        return None, "backslash in the path"
    if raw.startswith("/"):
        return None, "absolute path"
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if not parts:
        return None, "empty path"
    if ".." in parts:
        return None, "path leaves the archive"
    if len(parts) > MAX_DEPTH:
        return None, f"deeper than {MAX_DEPTH} directories"
    for part in parts:
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            return None, "a name longer than 255 bytes"
        if part != part.strip():
            return None, "a name starting or ending with whitespace"
        if any(unicodedata.category(c) in _FORBIDDEN for c in part):
            return None, "a control or invisible character"
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            return None, "not valid UTF-8"
    path = "/".join(parts)
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        return None, f"a path longer than {MAX_PATH_BYTES} bytes"
    return path, ""


@dataclass
class _Layout:
    """Paths taken so far: no duplicates, no file where a directory is needed."""

    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)

    def conflict(self, path: str) -> str:
        key = unicodedata.normalize("NFC", path)
        if key in self.files or key in self.dirs:
            return "duplicate path"
        parts = key.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self.files:
                return "a file stands where its directory should be"
        return ""

    def add(self, path: str) -> None:
        key = unicodedata.normalize("NFC", path)
        self.files.add(key)
        parts = key.split("/")
        self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))


class _Unpacker:
    def __init__(
        self, name: str, packed_size: int, limits: ArchiveLimits, store: StoreMember
    ) -> None:
        self.name = name
        self.packed_size = packed_size
        self.limits = limits
        self.store = store
        self.files: list[UnpackedFile] = []
        self.skipped: list[str] = []
        self.skipped_count = 0
        self.unpacked = 0
        self.layout = _Layout()

    def check_members(self, count: int) -> None:
        """Refuse an archive of more than ``count`` members, whatever they are."""
        most = self.limits.files_left + MAX_OTHER_MEMBERS
        if count > most:
            raise self.refuse(f"it has more than {most} members (files, directories, links)")

    def skip(self, raw: str, why: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < 20:
            self.skipped.append(f"{raw[:200]!r}: {why}")

    def refuse(self, why: str) -> ArchiveRefusedError:
        return ArchiveRefusedError(why)

    def accept(self, raw: str) -> str | None:
        path, why = member_path(raw)
        if path is None:
            self.skip(raw, why)
            return None
        why = self.layout.conflict(path)
        if why:
            self.skip(raw, why)
            return None
        if len(self.files) >= self.limits.files_left:
            raise self.refuse(
                f"it unpacks to more than {self.limits.files_left} files (the ticket's "
                "unpacked-file limit)"
            )
        return path

    def take(self, path: str, stream: Iterator[bytes], packed: int | None) -> None:
        """Store one member, counting its bytes against every cap as they stream."""
        member_bytes = 0

        def counted() -> Iterator[bytes]:
            nonlocal member_bytes
            for chunk in stream:
                member_bytes += len(chunk)
                self.unpacked += len(chunk)
                if member_bytes > self.limits.max_member_bytes:
                    raise self.refuse(
                        f"member {path!r} unpacks to more than {self.limits.max_member_bytes} "
                        "bytes (the per-file limit)"
                    )
                if self.unpacked > self.limits.bytes_left:
                    raise self.refuse(
                        f"it unpacks to more than {self.limits.bytes_left} bytes (the ticket's "
                        "unpacked-size limit)"
                    )
                ratio = self.limits.max_ratio
                if self.unpacked > max(RATIO_FLOOR, ratio * self.packed_size):
                    raise self.refuse(
                        f"it unpacks to more than {ratio} times its {self.packed_size} bytes "
                        "(compression ratio limit: a zip bomb?)"
                    )
                if packed is not None and member_bytes > max(RATIO_FLOOR, ratio * max(packed, 1)):
                    raise self.refuse(
                        f"member {path!r} unpacks to more than {ratio} times its {packed} "
                        "packed bytes (compression ratio limit: a zip bomb?)"
                    )
                yield chunk

        self.files.append(self.store(path, counted()))
        self.layout.add(path)

    def listing(self, directory: str) -> ArchiveListing:
        return ArchiveListing(
            directory=directory,
            files=self.files,
            skipped=self.skipped,
            skipped_count=self.skipped_count,
        )


def _chunks(reader: IO[bytes] | gzip.GzipFile) -> Iterator[bytes]:
    while chunk := reader.read(CHUNK):
        yield chunk


def _check_zip_directory(unpacker: _Unpacker, source: BinaryIO) -> None:
    """Refuse a zip whose central directory is too large, before zipfile parses all of it.

    zipfile reads every entry of the directory into memory at once. Its end
    record declares how many entries there are and how many bytes they take,
    and zipfile reads by bytes: both are capped.
    """
    # zipfile's own reader of the end record (and its Zip64 locator); not public API.
    record = zipfile._EndRecData(source)  # type: ignore[attr-defined]
    if not record:
        raise zipfile.BadZipFile("File is not a zip file")
    unpacker.check_members(int(record[zipfile._ECD_ENTRIES_TOTAL]))  # type: ignore[attr-defined]
    most = (unpacker.limits.files_left + MAX_OTHER_MEMBERS) * ZIP_ENTRY_BYTES
    if int(record[zipfile._ECD_SIZE]) > most:  # type: ignore[attr-defined]
        raise unpacker.refuse(f"its directory of members is larger than {most} bytes")


def _zip(unpacker: _Unpacker, source: BinaryIO) -> None:
    _check_zip_directory(unpacker, source)
    with zipfile.ZipFile(source) as archive:
        members = archive.infolist()
        unpacker.check_members(len(members))
        for info in members:
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                unpacker.skip(info.filename, "symbolic link")
                continue
            if kind not in (0, stat.S_IFREG):
                unpacker.skip(info.filename, "not a regular file")
                continue
            if info.flag_bits & 0x1:
                unpacker.skip(info.filename, "encrypted")
                continue
            if info.compress_type not in _ZIP_METHODS:
                # Deflate64 (Windows' "compressed folder" past 2 GB), Implode, ...
                unpacker.skip(info.filename, f"compression method {info.compress_type} unsupported")
                continue
            ratio = unpacker.limits.max_ratio
            if info.file_size > max(RATIO_FLOOR, ratio * max(info.compress_size, 1)):
                raise unpacker.refuse(
                    f"member {info.filename[:200]!r} declares {info.file_size} bytes from "
                    f"{info.compress_size} packed (compression ratio limit {ratio}: a zip bomb?)"
                )
            path = unpacker.accept(info.filename)
            if path is None:
                continue
            with archive.open(info) as member:
                unpacker.take(path, _chunks(member), info.compress_size)


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose extension is refused, not read into memory, past its cap."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        extension = self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) or (
            self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
        )
        if extension and self.size > MAX_HEADER_EXTENSION_BYTES:
            raise ArchiveRefusedError(
                f"a {self.size}-byte header extension (a long name or a pax header; the limit is "
                f"{MAX_HEADER_EXTENSION_BYTES})"
            )
        # tarfile dispatches each header through this (undocumented) method.
        proceed: Callable[[tarfile.TarFile], tarfile.TarInfo] = getattr(super(), "_proc_member")  # noqa: B009
        return proceed(tar)


class _Inflated(io.RawIOBase):
    """The inflated stream of a .tar.gz, counting everything it inflates.

    Skipped members and headers never reach ``_Unpacker.take``, yet they
    cost as much to inflate: without this, a member named ``../x`` could
    inflate without limit (measured: 1 GiB of zeros in a 1 MB upload, 23 s
    of CPU, never refused). Inflated with zlib here, member by member, so
    that bytes after the last gzip member end the stream, as tarfile's own
    reader takes them (a tar not padded to whole records reads past its end).
    """

    def __init__(self, unpacker: _Unpacker, packed: BinaryIO) -> None:
        super().__init__()
        self._packed = packed
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # read from ``packed``, not inflated yet
        self._ended = False
        limits = unpacker.limits
        allowance = limits.files_left + MAX_OTHER_MEMBERS
        self._cap = min(
            limits.bytes_left + RATIO_FLOOR + TAR_BYTES_PER_MEMBER * allowance,
            max(RATIO_FLOOR, limits.max_ratio * unpacker.packed_size),
        )
        self._ratio = limits.max_ratio
        self._packed_size = unpacker.packed_size
        self.inflated = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._inflate(min(len(view), CHUNK))
        self.inflated += len(chunk)
        if self.inflated > self._cap:
            raise ArchiveRefusedError(
                f"it inflates to more than {self._cap} bytes ({self._packed_size} packed, "
                f"compression ratio limit {self._ratio}, headers and skipped members included: "
                "a bomb?)"
            )
        view[: len(chunk)] = chunk
        return len(chunk)

    def _inflate(self, size: int) -> bytes:
        while not self._ended:
            if self._zlib.eof:
                rest = self._zlib.unused_data
                if len(rest) < 2:
                    rest += self._packed.read(2 - len(rest))
                if rest[:2] != b"\x1f\x8b":  # no other member follows: the end
                    self._ended = True
                    break
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._pending = rest
            data = self._pending or self._packed.read(CHUNK)
            if not data:
                raise EOFError("the gzip stream ends before its end-of-stream marker")
            out = self._zlib.decompress(data, size)
            self._pending = b"" if self._zlib.eof else self._zlib.unconsumed_tail
            if out:
                return out
        return b""


def _tar(unpacker: _Unpacker, source: BinaryIO, compressed: bool) -> None:
    # Stream mode: members are read in order, nothing seeks back. A .tar.gz is
    # inflated here, not by tarfile, so that every inflated byte is counted.
    with contextlib.ExitStack() as stack:
        stream: BinaryIO | _Inflated = source  # the caller's: not closed here
        if compressed:
            stream = stack.enter_context(_Inflated(unpacker, source))
        archive = stack.enter_context(
            tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo)
        )
        for seen, member in enumerate(archive, start=1):
            unpacker.check_members(seen)
            _tar_member(unpacker, archive, member)


def _tar_member(unpacker: _Unpacker, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    if member.isdir():
        return
    if member.issym() or member.islnk():
        unpacker.skip(member.name, "link")
        return
    if member.ischr() or member.isblk() or member.isfifo():
        unpacker.skip(member.name, "device or FIFO")
        return
    if not member.isreg() or member.issparse():
        unpacker.skip(member.name, "not a regular file")
        return
    path = unpacker.accept(member.name)
    if path is None:
        return
    reader = archive.extractfile(member)
    if reader is None:
        unpacker.skip(member.name, "not a regular file")
        return
    unpacker.take(path, _chunks(reader), None)


def _gzip(unpacker: _Unpacker, source: BinaryIO, name: str) -> None:
    inner = name[: -len(".gz")] or "content"
    path = unpacker.accept(inner)
    if path is None:
        return
    with gzip.GzipFile(fileobj=source, mode="rb") as reader:
        unpacker.take(path, _chunks(reader), None)


def unpack(
    name: str, source: BinaryIO, packed_size: int, limits: ArchiveLimits, store: StoreMember
) -> ArchiveListing | None:
    """The listing of an archive named ``name`` (None if the name is no archive's).

    ``source`` must be seekable (zip reads its directory at the end). A
    broken archive or one over a cap comes back with ``error`` set and no
    files; members stored before the refusal are held by no ticket and go
    with the next sweep.
    """
    kind = archive_kind(name)
    if kind is None:
        return None
    directory = name + UNPACKED_SUFFIX
    unpacker = _Unpacker(name, packed_size, limits, store)
    source.seek(0)
    try:
        if kind == "zip":
            _zip(unpacker, source)
        elif kind in ("tar", "tar.gz"):
            _tar(unpacker, source, compressed=kind == "tar.gz")
        else:
            _gzip(unpacker, source, name)
    except ArchiveRefusedError as exc:
        return ArchiveListing(directory=directory, error=f"not unpacked: {exc}")
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        zlib.error,
        lzma.LZMAError,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,  # a feature zipfile or tarfile does not read
        RecursionError,  # thousands of chained tar header extensions
    ) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return ArchiveListing(
            directory=directory, error=f"not unpacked: not a readable {kind} archive ({reason})"
        )
    return unpacker.listing(directory)
