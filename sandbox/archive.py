"""The tar stream that carries attachments into a container through the Docker API.

Generated piece by piece (header, data, padding) so a large attachment is
never copied into a second in-memory archive, and built by hand from
already-validated names so it can only ever contain root-owned, read-only
regular files: no links, devices, directories or paths.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Iterable, Iterator

from sandbox.models import InputFile

_BLOCK = 512


def input_archive(files: Iterable[InputFile], mtime: float | None = None) -> Iterator[bytes]:
    """Yield a tar archive of ``files`` as 0444 root:root regular files."""
    stamp = int(time.time() if mtime is None else mtime)
    for item in files:
        info = tarfile.TarInfo(item.name)
        info.type = tarfile.REGTYPE
        info.size = len(item.data)
        info.mode = 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = stamp
        # PAX headers carry any UTF-8 name exactly; errors="strict" because
        # names were validated as UTF-8 already.
        yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")
        if item.data:
            yield item.data
            yield b"\0" * (-len(item.data) % _BLOCK)
    yield b"\0" * (2 * _BLOCK)
