"""A warm pool: locked-down containers started ahead of time, each used once.

A pool container is created with exactly the same settings as a fresh one;
its supervisor simply waits (up to ``pool_idle_seconds``) for its one
request. Taking one skips container creation and start, the bulk of an
execution's latency. The pool refills in the background and replaces
containers before their idle life ends, so a taken container never dies of
old age mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class PooledContainer:
    id: str
    name: str
    created: float  # time.monotonic()


class WarmPool:
    """Keeps ``size`` started containers ready; ``take`` hands each out once."""

    def __init__(
        self,
        size: int,
        max_age_seconds: float,
        create: Callable[[], Coroutine[Any, Any, PooledContainer]],
        destroy: Callable[[str], Coroutine[Any, Any, None]],
    ) -> None:
        self._size = size
        self._max_age = max_age_seconds
        self._create = create
        self._destroy = destroy
        self._ready: deque[PooledContainer] = deque()
        self._wanted = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    async def start(self) -> None:
        if self._size > 0 and self._task is None:
            self._task = asyncio.create_task(self._refill(), name="sandbox-pool-refill")

    def take(self) -> PooledContainer | None:
        """A ready container young enough to run a full execution, or None."""
        self._discard_stale()
        chosen = self._ready.popleft() if self._ready else None
        self._wanted.set()
        return chosen

    async def wait_ready(self, count: int | None = None, within_seconds: float = 30.0) -> bool:
        """Wait until ``count`` (default: the pool size) containers are ready."""
        wanted = self._size if count is None else count
        deadline = time.monotonic() + within_seconds
        while len(self._ready) < wanted:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        """Stop refilling and destroy every container still waiting."""
        self._closing = True
        self._wanted.set()
        if self._task is not None:
            # Let an in-flight creation finish so its container is not lost.
            await self._task
            self._task = None
        while self._ready:
            self._discard(self._ready.popleft())
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _refill(self) -> None:
        """Keep ``size`` containers ready or being started.

        The missing ones start at once, not one after another: under gVisor a
        start takes about 450 ms, and an agent answering quickly takes one
        container every 250-300 ms, so a serial refill left every fourth code
        run to start its own container (measured: 1 in 4 loop steps took
        400 ms longer).
        """
        backoff = 1.0
        creating: set[asyncio.Task[PooledContainer]] = set()
        try:
            while not self._closing:
                self._discard_stale()
                while len(self._ready) + len(creating) < self._size:
                    creating.add(asyncio.create_task(self._create()))
                if not creating:
                    oldest = (
                        min(c.created for c in self._ready) if self._ready else time.monotonic()
                    )
                    await self._pause(max(oldest + self._max_age - time.monotonic(), 0.05))
                    continue
                # Wake on a finished start, or on a take (which wants one more now).
                self._wanted.clear()
                wanted = asyncio.create_task(self._wanted.wait())
                done, _ = await asyncio.wait({*creating, wanted}, return_when=FIRST_COMPLETED)
                wanted.cancel()
                failed = False
                for task in [t for t in creating if t in done]:
                    creating.discard(task)
                    try:
                        container = task.result()
                    except Exception as exc:
                        log.warning("sandbox pool: cannot start a container: %s", exc)
                        failed = True
                        continue
                    backoff = 1.0
                    if self._closing:
                        self._discard(container)
                    else:
                        self._ready.append(container)
                if failed:
                    await self._pause(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        finally:
            # Closing: let in-flight starts finish so their containers are not lost.
            for outcome in await asyncio.gather(*creating, return_exceptions=True):
                if isinstance(outcome, PooledContainer):
                    self._discard(outcome)

    async def _pause(self, seconds: float) -> None:
        """Sleep until woken by a take or close, or ``seconds`` pass."""
        self._wanted.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wanted.wait(), seconds)

    def _discard_stale(self) -> None:
        now = time.monotonic()
        while self._ready and now - self._ready[0].created >= self._max_age:
            self._discard(self._ready.popleft())

    def _discard(self, container: PooledContainer) -> None:
        task = asyncio.create_task(self._destroy(container.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
