"""The worker process: registers the support workflow and runs its tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from hatchet_sdk import Hatchet, RateLimitDuration

from evidence.retention import sweep
from evidence.store import EvidenceStore
from sandbox import DockerSandbox, SandboxError
from workflows.deps import (
    Dependencies,
    EvidenceLoader,
    choose_deliverer,
    choose_llm,
    describe_delivery,
    describe_planner,
    open_evidence_store,
)
from workflows.names import SANDBOX_LABEL, SANDBOX_LABEL_VALUE
from workflows.settings import Settings
from workflows.support import build_support_workflow

log = logging.getLogger("support_agent.worker")


def check_docker(settings: Settings) -> None:
    """Fail fast (before registering) when this worker is meant to run sandboxes but cannot."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(settings.sandbox.image)
    except docker.errors.ImageNotFound as exc:
        raise SandboxError(
            f"sandbox image {settings.sandbox.image} not found: run `make setup` "
            "(or start the worker with --no-sandbox)"
        ) from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise SandboxError(
            f"this worker runs sandboxes but Docker does not answer: {exc} "
            "(start Docker, or start the worker with --no-sandbox)"
        ) from exc
    client.close()


async def sweep_periodically(store: EvidenceStore, settings: Settings) -> None:
    """Delete evidence no ticket holds any more, now and every interval.

    Every worker sweeps: a sweep is idempotent, and the evidence of tickets
    must go even when only one worker is left. A failed sweep (the store did
    not answer) is logged and tried again at the next interval.
    """
    while True:
        try:
            report = await asyncio.to_thread(
                sweep, store, grace_seconds=settings.evidence.sweep_grace_seconds
            )
            if report.blobs_deleted or report.holds_released:
                log.info("evidence sweep: %s", report.describe())
        except Exception as exc:
            log.warning("evidence sweep failed: %s", exc)
        await asyncio.sleep(settings.evidence.sweep_interval_seconds)


def run_worker(
    hatchet: Hatchet,
    settings: Settings,
    *,
    slots: int | None = None,
    run_sandboxes: bool | None = None,
) -> None:
    """Start a worker and block until it is stopped (SIGTERM/SIGINT)."""
    sandboxes = settings.run_sandboxes if run_sandboxes is None else run_sandboxes
    # Refuses (before anything registers) when Claude is chosen but has no key.
    llm = choose_llm(settings)
    if sandboxes:
        check_docker(settings)
    store = open_evidence_store(settings)
    deps = Dependencies(
        llm=llm,
        evidence=EvidenceLoader(store),
        delivery=choose_deliverer(settings),
    )
    workflow = build_support_workflow(hatchet, settings, deps)
    # Model calls from every worker with this key share one limit (the key is not namespaced).
    hatchet.rate_limits.put(
        settings.llm_rate_limit_key, settings.llm_requests_per_minute, RateLimitDuration.MINUTE
    )

    async def lifespan() -> AsyncGenerator[None, None]:
        # The sandbox's warm pool and reaper live on the worker's event loop.
        sandbox = DockerSandbox(settings.sandbox) if sandboxes else None
        if sandbox is not None:
            await sandbox.start()
            deps.sandbox = sandbox
        sweeper = asyncio.create_task(sweep_periodically(store, settings))
        log.info(
            "worker started; customers are answered by: %s; code runs: %s; delivery: %s; "
            "evidence: %s",
            describe_planner(deps.llm),
            f"yes, sandbox runtime {sandbox.runtime_label}" if sandbox else "no (--no-sandbox)",
            describe_delivery(deps.delivery),
            store.description,
        )
        try:
            yield
        finally:
            sweeper.cancel()
            if deps.delivery is not None:
                await deps.delivery.aclose()
            if sandbox is not None:
                await sandbox.close()

    worker = hatchet.worker(
        settings.worker_name,
        slots=slots or settings.worker_slots,
        durable_slots=settings.worker_durable_slots,
        labels={SANDBOX_LABEL: SANDBOX_LABEL_VALUE} if sandboxes else {},
        workflows=workflow.all(),
        lifespan=lifespan,
    )
    worker.start()
