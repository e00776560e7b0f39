"""The tar stream that carries attachments into a container through the Docker API.

Generated piece by piece (header, data chunks, padding) so a large
attachment is never held in memory, and built by hand from already-validated
relative paths so it can only ever contain root-owned, read-only regular
files and the directories above them: no links, devices or absolute paths.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterable, Iterator

from sandbox.errors import SandboxError
from sandbox.models import InputFile

_BLOCK = 512


def _directory(path: str, stamp: int) -> bytes:
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    info.mode = 0o555
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = stamp
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def input_archive(files: Iterable[InputFile], mtime: float | None = None) -> Iterator[bytes]:
    """Yield a tar archive of ``files`` as 0444 root:root regular files (0555 directories).

    A streamed file's content is passed through chunk by chunk; if its stream
    yields more or fewer bytes than its size, or raises, the archive is
    abandoned (the exception propagates into the Docker API call, which then
    fails, and the container is thrown away).
    """
    stamp = int(time.time() if mtime is None else mtime)
    made: set[str] = set()
    for item in files:
        parts = item.name.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                made.add(directory)
                yield _directory(directory, stamp)
        info = tarfile.TarInfo(item.name)
        info.type = tarfile.REGTYPE
        info.size = item.size
        info.mode = 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = stamp
        # PAX headers carry any UTF-8 name exactly; errors="strict" because
        # names were validated as UTF-8 already.
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        sent = 0
        for chunk in item.chunks():
            sent += len(chunk)
            if sent > item.size:
                raise SandboxError(f"input {item.name!r} is larger than its {item.size} bytes")
            yield chunk
        if sent != item.size:
            raise SandboxError(f"input {item.name!r} has {sent} bytes, not {item.size}")
        yield b"\0" * (-item.size % _BLOCK)
    yield b"\0" * (2 * _BLOCK)
