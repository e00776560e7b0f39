"""A loopback TCP proxy whose connections can be cut on demand: a network blip.

Put it between a worker and the engine's gRPC port; ``blip()`` aborts every
open connection (both directions, as a dropped link looks to either side)
and refuses new ones for a moment, then lets the worker reconnect.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType


class BlipProxy:
    """``with BlipProxy(target_port) as proxy:`` listens on 127.0.0.1:``proxy.port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections_cut = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._down_until = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._down_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(up_writer)

    async def _cut(self, down_seconds: float) -> int:
        self._down_until = time.monotonic() + down_seconds
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    def blip(self, down_seconds: float = 3.0) -> int:
        """Drop every connection and refuse new ones for ``down_seconds``; the sockets cut."""
        cut = asyncio.run_coroutine_threadsafe(self._cut(down_seconds), self._loop).result(10)
        self.connections_cut += cut
        return cut

    def __enter__(self) -> BlipProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
