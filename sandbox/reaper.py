"""Removes sandbox containers that outlived their deadline, whoever started them.

Containers stop on their own at their deadline (the supervisor is pid 1 and
exits) and Docker auto-removes them; the reaper is the backstop for what that
cannot cover: a daemon restart, a supervisor that was tampered with, a
container whose labels are garbled, or leftover anonymous volumes. It goes by
label only, so every worker on a Docker host can run it safely: a container
still within its expiry is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import docker
import docker.errors

from sandbox.containers import remove_container
from sandbox.naming import Labels

log = logging.getLogger(__name__)

DEFAULT_LABEL_PREFIX = "support-agent"
DEFAULT_ORPHAN_GRACE_SECONDS = 60.0


def reap_expired_blocking(
    client: docker.DockerClient,
    now: float | None = None,
    *,
    label_prefix: str = DEFAULT_LABEL_PREFIX,
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> int:
    """Remove expired or orphaned sandbox containers; return how many were removed.

    Expired: the expiry label is in the past (or missing or garbled). Orphaned:
    stopped for good (exited, dead) and created longer ago than the grace;
    nothing of ours ever needs such a container again.
    """
    labels = Labels(label_prefix)
    now = time.time() if now is None else now
    removed = 0
    for info in client.api.containers(all=True, filters={"label": labels.marker_filter}):
        expiry = labels.expiry(info.get("Labels"))
        stopped = info.get("State") in ("exited", "dead")
        old = now - float(info.get("Created") or 0) > orphan_grace_seconds
        if expiry is None or expiry <= now or (stopped and old):
            try:
                remove_container(client, info["Id"])
                removed += 1
            except docker.errors.APIError as exc:
                log.warning("sandbox reaper: cannot remove %s: %s", info["Id"][:12], exc)
    # Input volumes normally go with their container; remove strays one by one
    # (Docker 20.10's volume prune passes over volumes with driver options,
    # as these tmpfs ones have). One in use is refused (409) and kept.
    with contextlib.suppress(docker.errors.APIError):
        strays = client.api.volumes(filters={"label": labels.marker_filter, "dangling": True})
        for volume in (strays or {}).get("Volumes") or []:
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_volume(volume["Name"])
    return removed


async def reap_expired(
    client: docker.DockerClient,
    now: float | None = None,
    *,
    label_prefix: str = DEFAULT_LABEL_PREFIX,
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> int:
    """Async form of ``reap_expired_blocking`` (runs in a thread)."""
    return await asyncio.to_thread(
        reap_expired_blocking,
        client,
        now,
        label_prefix=label_prefix,
        orphan_grace_seconds=orphan_grace_seconds,
    )


class PeriodicReaper:
    """Runs ``reap`` at start and then every ``interval`` seconds until stopped."""

    def __init__(self, reap: Callable[[], int], interval_seconds: float) -> None:
        self._reap = reap
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Reap once now (a worker starts clean), then every interval in the background."""
        if self._task is None:
            await self.reap_once()
            self._task = asyncio.create_task(self._loop(), name="sandbox-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reap_once(self) -> int:
        try:
            count = await asyncio.to_thread(self._reap)
        except Exception as exc:  # Docker away for a while: try again next period
            log.warning("sandbox reaper: %s", exc)
            return 0
        if count:
            log.info("sandbox reaper: removed %d expired container(s)", count)
        return count

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.reap_once()
