"""One streaming pass over a file: its hash, size, line count and a head and tail preview.

The model is shown the preview; everything else it learns by running code.
The pass reads in chunks and keeps only the head, a bounded tail and a
hash state, so a 200 MB log costs the same memory as a 2 KB one.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass

SNIFF_BYTES = 8192

_TEXT_TYPES = {
    ".log": "text/plain",
    ".txt": "text/plain",
    ".out": "text/plain",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/jsonl",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".ini": "text/plain",
    ".conf": "text/plain",
    ".cfg": "text/plain",
    ".env": "text/plain",
    ".xml": "application/xml",
    ".sql": "application/sql",
    ".tgz": "application/gzip",
    ".gz": "application/gzip",
}


def guess_media_type(name: str, binary: bool | None = None) -> str:
    """From the name; a name that says nothing is text/plain or octet-stream by content."""
    base = name.rsplit("/", 1)[-1]
    suffix = ("." + base.rsplit(".", 1)[-1].lower()) if "." in base else ""
    guessed = _TEXT_TYPES.get(suffix) or mimetypes.guess_type(base)[0]
    if guessed:
        return guessed
    return "text/plain" if binary is False else "application/octet-stream"


def looks_binary(head: bytes) -> bool:
    """NUL bytes or invalid UTF-8 in the first bytes (a character cut at the end is fine)."""
    sample = head[:SNIFF_BYTES]
    if b"\x00" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 4
    return False


@dataclass(frozen=True)
class Facts:
    """What one pass learned about a file."""

    sha256: str
    size: int
    lines: int | None  # None for binary files
    binary: bool
    head: bytes
    tail: bytes  # the last bytes, when the file is longer than its head


class Scanner:
    """Feed chunks with ``update``; ``facts()`` at the end."""

    def __init__(self, head_bytes: int = 2048, tail_bytes: int = 1024) -> None:
        self._hash = hashlib.sha256()
        self._head_limit = max(head_bytes, SNIFF_BYTES)
        self._shown_head = head_bytes
        self._tail_limit = tail_bytes
        self._head = bytearray()
        self._tail = bytearray()
        self._lines = 0
        self._size = 0
        self._last = b""

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._hash.update(chunk)
        self._size += len(chunk)
        self._lines += chunk.count(b"\n")
        self._last = chunk[-1:]
        if len(self._head) < self._head_limit:
            self._head += chunk[: self._head_limit - len(self._head)]
        if self._tail_limit:
            self._tail += chunk[-self._tail_limit :]
            del self._tail[: max(len(self._tail) - self._tail_limit, 0)]

    @property
    def size(self) -> int:
        return self._size

    def facts(self) -> Facts:
        binary = looks_binary(bytes(self._head))
        lines = self._lines + (1 if self._size and self._last != b"\n" else 0)
        head = bytes(self._head[: self._shown_head])
        tail_start = max(self._size - len(self._tail), len(head))
        tail = bytes(self._tail[len(self._tail) - (self._size - tail_start) :])
        return Facts(
            sha256=self._hash.hexdigest(),
            size=self._size,
            lines=None if binary else lines,
            binary=binary,
            head=head,
            tail=tail,
        )


def scan(chunks: Iterable[bytes], head_bytes: int = 2048, tail_bytes: int = 1024) -> Facts:
    scanner = Scanner(head_bytes, tail_bytes)
    for chunk in chunks:
        scanner.update(chunk)
    return scanner.facts()
