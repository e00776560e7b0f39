"""The host's side of the supervisor protocol (see sandbox/supervisor.py).

The report comes from inside the container, so it is parsed as hostile input:
every line and payload is bounded, and anything malformed ends parsing with
an error instead of an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import supervisor
from sandbox.capture import FileCollector

MAX_LINE_BYTES = 256
MAX_OUTPUT_NAME_BYTES = 4096
MAX_KERNEL_BYTES = 64


@dataclass(frozen=True)
class OutputCaps:
    max_files: int
    max_file_bytes: int
    max_total_bytes: int


def encode_request(
    nonce: bytes, language: str, timeout: float, code: bytes, caps: OutputCaps
) -> bytes:
    """The request line and code, as the supervisor reads them from stdin."""
    header = b" ".join(
        [
            supervisor.REQUEST_MAGIC,
            nonce,
            language.encode(),
            b"%d" % max(int(timeout * 1000), 1),
            b"%d" % len(code),
            b"%d" % caps.max_files,
            b"%d" % caps.max_file_bytes,
            b"%d" % caps.max_total_bytes,
        ]
    )
    return header + b"\n" + code


class ReportParser:
    """Incremental parser of the report that follows the marker on stdout."""

    def __init__(self, files: FileCollector) -> None:
        self.files = files
        self.done = False
        self.error: str | None = None
        self.exit_code: int | None = None
        self.timed_out = False
        self.oom_kills = 0
        self.duration_seconds: float | None = None
        self.kernel = ""
        self._buf = bytearray()
        # While reading a file: its name, size, bytes still to read, bytes kept.
        self._name_left = 0
        self._data_left = 0
        self._name = bytearray()
        self._data = bytearray()
        self._size = 0

    def feed(self, data: bytes) -> None:
        if self.done or self.error:
            return
        self._buf += data
        while not (self.done or self.error):
            if self._name_left or self._data_left:
                if not self._payload():
                    return
                continue
            newline = self._buf.find(b"\n")
            if newline < 0:
                if len(self._buf) > MAX_LINE_BYTES:
                    self.error = "report line too long"
                return
            line = bytes(self._buf[:newline])
            del self._buf[: newline + 1]
            self._line(line)

    def _line(self, line: bytes) -> None:
        key, _, value = line.partition(b" ")
        try:
            if key == b"exit":
                self.exit_code = None if value == b"none" else int(value)
            elif key == b"timed_out":
                self.timed_out = value == b"1"
            elif key == b"oom_kills":
                self.oom_kills = int(value)
            elif key == b"duration_ms":
                self.duration_seconds = int(value) / 1000
            elif key == b"kernel":
                self.kernel = value[:MAX_KERNEL_BYTES].decode("ascii", "replace")
            elif key == b"file":
                name_len, size, stored = (int(v) for v in value.split(b" "))
                if not 0 < name_len <= MAX_OUTPUT_NAME_BYTES or min(size, stored) < 0:
                    raise ValueError("bad file header")
                self._name_left, self._size, self._data_left = name_len, size, stored
                self._name.clear()
                self._data.clear()
            elif key == b"omitted":
                self.files.omitted += int(value)
            elif key == b"end":
                self.done = True
            else:
                raise ValueError("unknown report line")
        except ValueError as exc:
            self.error = f"malformed report: {exc}"

    def _payload(self) -> bool:
        """Consume file name and data from the buffer; False when more input is needed."""
        if self._name_left:
            take = min(self._name_left, len(self._buf))
            self._name += self._buf[:take]
            del self._buf[:take]
            self._name_left -= take
            if self._name_left:
                return False
        take = min(self._data_left, len(self._buf))
        # Never keep more than one file's cap, whatever the report claims.
        room = max(self.files.max_file_bytes - len(self._data), 0)
        self._data += self._buf[: min(take, room)]
        del self._buf[:take]
        self._data_left -= take
        if self._data_left:
            return False
        self.files.add(bytes(self._name), self._size, bytes(self._data))
        return True
