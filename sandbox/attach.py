"""Docker's hijacked attach connection, read frame by frame with bounded buffers.

The Docker SDK's own readers assemble whole frames and have no deadline; this
reads at most ``CHUNK`` bytes at a time and gives up at a monotonic deadline,
so neither a flood of output nor a silent process can hold a worker thread
longer than the execution's timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

CHUNK = 64 * 1024
STDOUT = 1
STDERR = 2


class DeadlineExceeded(Exception):
    """The deadline passed before the stream ended."""


class AttachConnection:
    """One container's stdin/stdout/stderr over an upgraded Docker API connection.

    Relies on nothing having been sent by the container before the attach
    (the supervisor is silent until it gets its request): the SDK's HTTP
    response object may have buffered bytes we would otherwise never see.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        # Unix and plain TCP: a SocketIO around the socket; TLS and ssh: the
        # socket-like object itself.
        self._sock: Any = getattr(handle, "_sock", handle)

    def send(self, data: bytes, deadline: float) -> None:
        self._set_deadline(deadline)
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            raise DeadlineExceeded from exc

    def frames(self, deadline: float) -> Iterator[tuple[int, bytes]]:
        """(stream, bytes) pieces in arrival order until the connection ends."""
        while True:
            header = self._read_exactly(8, deadline)
            if header is None:
                return
            stream = header[0]
            left = int.from_bytes(header[4:8], "big")
            while left:
                piece = self._recv(min(left, CHUNK), deadline)
                if not piece:
                    return
                left -= len(piece)
                yield stream, piece

    def close(self) -> None:
        for thing in (self._sock, self._handle, getattr(self._handle, "_response", None)):
            try:
                if thing is not None:
                    thing.close()
            except Exception:  # best effort: the connection is being thrown away
                pass

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        data = b""
        while len(data) < size:
            piece = self._recv(size - len(data), deadline)
            if not piece:
                return None
            data += piece
        return data

    def _recv(self, size: int, deadline: float) -> bytes:
        self._set_deadline(deadline)
        try:
            return bytes(self._sock.recv(size))
        except TimeoutError as exc:
            raise DeadlineExceeded from exc
        except OSError:
            return b""  # reset by the daemon: the container is gone

    def _set_deadline(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        self._sock.settimeout(left)
