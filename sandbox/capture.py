"""Bounded capture of untrusted byte streams, and their safe decoding.

The code may print gigabytes, binary, or half a UTF-8 character at a cut.
Everything here keeps a fixed amount of memory whatever it is fed, and turns
bytes into text without ever raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class HeadTailBuffer:
    """Keeps the first and last bytes of a stream of unknown length.

    The head shows how the output started (headers, the first error), the tail
    how it ended (the final traceback); the middle is counted, not kept.
    Memory stays below ``limit`` plus one incoming chunk.
    """

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        if len(data) >= self.tail_limit:
            self._tail = bytearray(data[len(data) - self.tail_limit :])
            return
        self._tail += data
        # Trim lazily (at twice the limit) so small writes do not each cost a copy.
        if len(self._tail) > 2 * self.tail_limit:
            del self._tail[: len(self._tail) - self.tail_limit]

    def parts(self) -> tuple[bytes, bytes]:
        """The kept head and tail (contiguous when nothing was dropped)."""
        return bytes(self._head), bytes(self._tail[-self.tail_limit :] if self.tail_limit else b"")


@dataclass(frozen=True)
class DecodedStream:
    text: str
    dropped_bytes: int
    invalid_utf8: bool


def decode_capped(buffer: HeadTailBuffer, what: str = "output") -> DecodedStream:
    """Text of a captured stream, with an explicit note where bytes were dropped."""
    head, tail = buffer.parts()
    dropped = buffer.total - len(head) - len(tail)
    if dropped == 0:
        text, invalid = _decode(head + tail)
        return DecodedStream(text, 0, invalid)
    # A cut can split a multi-byte character; drop the halves rather than
    # report them as invalid UTF-8 the code never wrote.
    head = without_partial_end(head)
    tail = _without_partial_start(tail)
    dropped = buffer.total - len(head) - len(tail)
    head_text, head_invalid = _decode(head)
    tail_text, tail_invalid = _decode(tail)
    note = f"\n[... sandbox: {dropped} bytes of {what} dropped here ...]\n"
    return DecodedStream(head_text + note + tail_text, dropped, head_invalid or tail_invalid)


def _decode(data: bytes) -> tuple[str, bool]:
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def without_partial_end(data: bytes) -> bytes:
    """``data`` minus an incomplete UTF-8 sequence at its very end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # continuation byte: keep looking for the lead
            continue
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if needed > back:
                return data[:-back]
        return data
    return data


def _without_partial_start(data: bytes) -> bytes:
    """``data`` minus the continuation bytes of a character cut at its start."""
    skip = 0
    while skip < min(3, len(data)) and data[skip] & 0xC0 == 0x80:
        skip += 1
    return data[skip:]


class MarkerSplitter:
    """Splits a stream at the first occurrence of a marker, across chunk boundaries.

    Bytes that might be the start of the marker are held back (never more than
    the marker's length), so everything before the marker passes through once.
    """

    def __init__(self, marker: bytes) -> None:
        self._marker = marker
        self._carry = b""
        self.found = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(bytes before the marker, bytes after it) of what is known so far."""
        if self.found:
            return b"", data
        buf = self._carry + data
        at = buf.find(self._marker)
        if at >= 0:
            self.found = True
            self._carry = b""
            return buf[:at], buf[at + len(self._marker) :]
        # Hold back the last bytes only if they could begin the marker.
        hold_from = max(len(buf) - len(self._marker) + 1, 0)
        start = buf.find(self._marker[:1], hold_from)
        if start < 0:
            self._carry = b""
            return buf, b""
        self._carry = buf[start:]
        return buf[:start], b""

    def flush(self) -> bytes:
        """What was held back, once the stream has ended without the marker."""
        rest, self._carry = self._carry, b""
        return rest


@dataclass
class RawFile:
    name: bytes
    size: int
    data: bytes


@dataclass
class FileCollector:
    """Applies the output-file caps (count, per-file bytes, total bytes)."""

    max_files: int
    max_file_bytes: int
    max_total_bytes: int
    files: list[RawFile] = field(default_factory=list)
    omitted: int = 0
    _total: int = 0

    def add(self, name: bytes, size: int, data: bytes) -> None:
        if len(self.files) >= self.max_files:
            self.omitted += 1
            return
        keep = min(len(data), self.max_file_bytes, self.max_total_bytes - self._total)
        self._total += keep
        self.files.append(RawFile(name, max(size, len(data)), data[:keep]))
