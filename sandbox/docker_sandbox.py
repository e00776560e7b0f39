"""The Docker sandbox: one call, one locked-down container, destroyed afterwards.

Async on the outside, blocking Docker SDK calls on the inside: every call
runs in this sandbox's own thread pool (sized for its concurrency limit), so
neither a slow daemon nor a long execution ever blocks the event loop or
starves the loop's default executor.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import docker

from sandbox import containers
from sandbox.config import SandboxConfig
from sandbox.conversation import Conversation, converse
from sandbox.errors import SandboxError
from sandbox.models import ExecutionRequest, ExecutionResult, InputFile
from sandbox.naming import Labels, container_name, pool_container_name
from sandbox.pool import PooledContainer, WarmPool
from sandbox.reaper import PeriodicReaper, reap_expired_blocking
from sandbox.results import build_result
from sandbox.validation import PreparedRequest, prepare_request

log = logging.getLogger(__name__)
T = TypeVar("T")

# A pool container is handed out only while this much of its idle life is
# left, so its supervisor cannot reach its idle deadline before the request.
_POOL_CLAIM_MARGIN_SECONDS = 10.0
# A copy of inputs this slow is followed by a check that the container still waits.
_SLOW_COPY_SECONDS = 2.0


class DockerSandbox:
    """Runs each ``ExecutionRequest`` in a fresh or pre-started locked-down container."""

    def __init__(self, config: SandboxConfig, client: docker.DockerClient | None = None) -> None:
        self.config = config
        self._client = client
        self._client_lock = threading.Lock()
        # The runtime, resolved on first use ("auto" asks the daemon once).
        self._runtime: containers.Runtime | None = None
        self._runtime_lock = threading.Lock()
        self._labels = Labels(config.label_prefix)
        self._executor = ThreadPoolExecutor(
            max_workers=config.max_concurrent_runs + 4, thread_name_prefix="sandbox"
        )
        self._slots = asyncio.Semaphore(config.max_concurrent_runs)
        self._pool = WarmPool(
            size=config.pool_size,
            max_age_seconds=max(config.pool_idle_seconds - _POOL_CLAIM_MARGIN_SECONDS, 1.0),
            create=self._create_pooled,
            destroy=self._destroy,
        )
        self._reaper = PeriodicReaper(self._reap, config.reaper_interval_seconds)

    @property
    def pool(self) -> WarmPool:
        return self._pool

    @property
    def runtime(self) -> containers.Runtime | None:
        """The OCI runtime containers run under; None until Docker was first asked."""
        return self._runtime

    @property
    def runtime_label(self) -> str:
        """For a start line: "runsc (gVisor)" or "runc (shares the host kernel)"."""
        return self._runtime.describe() if self._runtime else "runtime not resolved yet"

    async def start(self) -> None:
        """Resolve the runtime; reap leftovers now and periodically; fill the warm pool."""
        await self._call(self.resolve_runtime)
        await self._reaper.start()
        await self._pool.start()

    async def close(self) -> None:
        """Stop the reaper and the pool (destroying its idle containers)."""
        await self._reaper.stop()
        await self._pool.close()
        self._executor.shutdown(wait=False)

    async def run(self, request: ExecutionRequest) -> ExecutionResult:
        """Run one piece of code; raise ``SandboxError`` only if it could not run."""
        prepared = prepare_request(request, self.config)
        name = container_name(request.ticket_id, request.run_id, request.step_id)
        async with self._slots:
            container = await self._from_pool(name, prepared)
            from_pool = container is not None
            if container is None:
                container = await self._owned(self._create_fresh, name, prepared)
            try:
                conversation = await self._call(self._converse, container, prepared)
            except BaseException:
                # Cancelled or failed: the container must not outlive this call.
                await asyncio.shield(self._destroy(container))
                raise
            if not conversation.finished or conversation.outcome.timed_out:
                # A reporting supervisor exits and Docker auto-removes the
                # container; after a timeout we make sure instead of trusting.
                await self._destroy(container)
            return build_result(
                conversation.outcome,
                container_name=name,
                from_pool=from_pool,
                runtime=self.resolve_runtime().name,
            )

    def client(self) -> docker.DockerClient:
        """The Docker client, connected on first use (blocking: call from a thread)."""
        with self._client_lock:
            if self._client is None:
                self._client = containers.connect(self.config)
            return self._client

    def resolve_runtime(self) -> containers.Runtime:
        """The runtime containers run under (blocking on first use: call from a thread)."""
        with self._runtime_lock:
            if self._runtime is None:
                self._runtime = containers.resolve_runtime(self.client(), self.config)
            return self._runtime

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def _owned(self, fn: Callable[..., str], *args: object) -> str:
        """Run ``fn`` (which returns a container it set up) and never lose that container.

        If the caller is cancelled while ``fn`` is still running in its thread,
        the container it returns later is destroyed instead of abandoned.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._destroy_when_done)
            raise

    def _destroy_when_done(self, future: asyncio.Future[str]) -> None:
        if not future.cancelled() and future.exception() is None:
            try:
                self._executor.submit(self._remove_blocking, future.result())
            except RuntimeError:  # closed meanwhile: its deadline and the reaper remain
                log.warning("sandbox: closed before container %s could be removed", future.result())

    def _converse(self, container: str, prepared: PreparedRequest) -> Conversation:
        return converse(self.client(), self.config, container, prepared)

    async def _from_pool(self, name: str, prepared: PreparedRequest) -> str | None:
        """A pool container made this execution's, or None (empty pool, unusable one).

        Inputs that may take longer to copy than a pool container is sure to
        wait go to a fresh container, whose wait is stretched for them.
        """
        if prepared.copy_seconds > _POOL_CLAIM_MARGIN_SECONDS / 2:
            return None
        pooled = self._pool.take()
        if pooled is None:
            return None
        try:
            return await self._owned(self._claim, pooled, name, prepared)
        except SandboxError as exc:
            log.info("sandbox pool: %s unusable (%s); using a fresh container", pooled.name, exc)
            await self._destroy(pooled.id)
            return None
        except BaseException:
            # The inputs' own stream failed (a store hiccup, a hash mismatch):
            # the container must not keep a partial copy; the caller decides.
            await asyncio.shield(self._destroy(pooled.id))
            raise

    def _claim(self, pooled: PooledContainer, name: str, prepared: PreparedRequest) -> str:
        client = self.client()
        containers.rename_container(client, self.config, pooled.id, name)
        if prepared.files:
            self._put_inputs(client, pooled.id, prepared.files)
        return pooled.id

    def _put_inputs(
        self, client: docker.DockerClient, container: str, files: list[InputFile]
    ) -> None:
        """Copy the inputs in; after a slow copy, make sure the code is still awaited.

        Fast copies (nearly all) cannot outlast a supervisor's wait (at least
        10 s): only a copy slower than ``_SLOW_COPY_SECONDS`` costs the check.
        """
        started = time.monotonic()
        containers.put_inputs(client, self.config, container, files)
        if time.monotonic() - started > _SLOW_COPY_SECONDS:
            containers.check_still_waiting(client, self.config, container)

    def _create_fresh(self, name: str, prepared: PreparedRequest) -> str:
        request = prepared.request
        # The supervisor waits for its request while the inputs are copied in.
        wait = self.config.startup_grace_seconds + prepared.copy_seconds
        expires = containers.expiry_for_fresh(self.config, prepared.timeout + prepared.copy_seconds)
        ids = (request.ticket_id, request.run_id, request.step_id)
        return self._new_container(
            name=name,
            labels=self._labels.for_container(expires, ids),
            idle_seconds=wait,
            files=prepared.files,
        )

    async def _create_pooled(self) -> PooledContainer:
        name = pool_container_name()
        container = await self._call(
            functools.partial(
                self._new_container,
                name=name,
                labels=self._labels.for_container(containers.expiry_for_pool(self.config)),
                idle_seconds=self.config.pool_idle_seconds,
                files=None,  # not known yet: always mount the input volume
            )
        )
        return PooledContainer(id=container, name=name, created=time.monotonic())

    def _new_container(
        self,
        *,
        name: str,
        labels: dict[str, str],
        idle_seconds: float,
        files: list[InputFile] | None,
    ) -> str:
        """Create and start a container (and put ``files`` in); nothing is left on failure."""
        client = self.client()
        container = containers.create_container(
            client,
            self.config,
            name=name,
            labels=labels,
            idle_seconds=idle_seconds,
            input_volume=files is None or bool(files),
            runtime=self.resolve_runtime(),
        )
        try:
            containers.start_container(client, self.config, container)
            if files:
                # Into the running container: the input volume is a tmpfs that
                # only exists while the container runs. The supervisor does
                # not start the code before its request, which comes after.
                self._put_inputs(client, container, files)
        except BaseException:
            self._remove_blocking(container)
            raise
        return container

    async def _destroy(self, container: str) -> None:
        await self._call(self._remove_blocking, container)

    def _remove_blocking(self, container: str) -> None:
        try:
            containers.remove_container(self.client(), container)
        except Exception as exc:  # the reaper will get it
            log.warning("sandbox: cannot remove container %s: %s", container[:12], exc)

    def _reap(self) -> int:
        return reap_expired_blocking(
            self.client(),
            label_prefix=self.config.label_prefix,
            orphan_grace_seconds=self.config.orphan_grace_seconds,
        )
