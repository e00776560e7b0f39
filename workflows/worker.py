"""The worker process: registers the support workflow and runs its tasks."""

from __future__ import annotations

from hatchet_sdk import Hatchet

from workflows.settings import Settings
from workflows.support import build_support_workflow


def run_worker(hatchet: Hatchet, settings: Settings, *, slots: int | None = None) -> None:
    """Start a worker and block until it is stopped (SIGTERM/SIGINT)."""
    workflow = build_support_workflow(hatchet, settings)
    worker = hatchet.worker(
        settings.worker_name,
        slots=slots or settings.worker_slots,
        durable_slots=settings.worker_durable_slots,
        workflows=workflow.all(),
    )
    worker.start()
