"""The warm pool's bookkeeping, with fake container creation."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from sandbox.pool import PooledContainer, WarmPool


class Factory:
    def __init__(self, fail_first: int = 0) -> None:
        self.ids = itertools.count()
        self.created: list[str] = []
        self.destroyed: list[str] = []
        self.fail_first = fail_first

    async def create(self) -> PooledContainer:
        await asyncio.sleep(0)
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("docker is down")
        name = f"c{next(self.ids)}"
        self.created.append(name)
        return PooledContainer(id=name, name=name, created=time.monotonic())

    async def destroy(self, container: str) -> None:
        self.destroyed.append(container)


async def test_fills_hands_out_once_and_refills() -> None:
    factory = Factory()
    pool = WarmPool(2, 60, factory.create, factory.destroy)
    await pool.start()
    assert await pool.wait_ready(within_seconds=5)
    first = pool.take()
    second = pool.take()
    assert first and second and first.id != second.id
    assert await pool.wait_ready(within_seconds=5)
    assert len(factory.created) == 4
    await pool.close()
    assert sorted(factory.destroyed) == sorted(factory.created[2:])


async def test_empty_or_disabled_pool_gives_nothing() -> None:
    factory = Factory()
    pool = WarmPool(0, 60, factory.create, factory.destroy)
    await pool.start()
    assert pool.take() is None
    await pool.close()
    assert factory.created == []


async def test_stale_containers_are_replaced() -> None:
    factory = Factory()
    pool = WarmPool(1, 0.2, factory.create, factory.destroy)
    await pool.start()
    assert await pool.wait_ready(within_seconds=5)
    await asyncio.sleep(0.5)
    taken = pool.take()
    assert taken is None or time.monotonic() - taken.created < 0.2
    assert factory.destroyed  # the old one went
    await pool.close()


async def test_creation_failures_back_off_and_recover(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.pool.WarmPool._pause", _short_pause)
    factory = Factory(fail_first=2)
    pool = WarmPool(1, 60, factory.create, factory.destroy)
    await pool.start()
    assert await pool.wait_ready(within_seconds=5)
    await pool.close()


async def _short_pause(self: WarmPool, seconds: float) -> None:
    await asyncio.sleep(min(seconds, 0.01))


class SlowFactory(Factory):
    """Creation that takes a while, recording how many run at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.running = 0
        self.most_at_once = 0

    async def create(self) -> PooledContainer:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
            return await super().create()
        finally:
            self.running -= 1


async def test_missing_containers_start_together() -> None:
    factory = SlowFactory(0.2)
    pool = WarmPool(3, 60, factory.create, factory.destroy)
    await pool.start()
    assert await pool.wait_ready(within_seconds=5)
    # All three were starting at the same moment (a serial refill never has two).
    assert factory.most_at_once == 3
    pool.take()
    pool.take()
    assert await pool.wait_ready(within_seconds=5)
    assert factory.most_at_once == 3 and len(factory.created) == 5
    await pool.close()


async def test_close_keeps_no_container_that_was_starting() -> None:
    factory = SlowFactory(0.2)
    pool = WarmPool(2, 60, factory.create, factory.destroy)
    await pool.start()
    await asyncio.sleep(0.05)  # both starts in flight
    await pool.close()
    assert len(factory.created) == 2
    assert sorted(factory.destroyed) == sorted(factory.created)
