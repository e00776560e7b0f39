"""Failover between workers: two sandbox workers and one without a sandbox on one engine.

The sandbox worker running a ticket's code is SIGKILLed mid-run: the run
completes on the other sandbox worker, no container is left, no finished
step runs again, and no code run ever lands on the worker without a sandbox.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hatchet_sdk import Hatchet
from hatchet_sdk.clients.rest.api.task_api import TaskApi
from hatchet_sdk.clients.rest.models.v1_task_event_type import V1TaskEventType

from agent.tools import REPLY, RUN_CODE
from tests.conftest import eventually, make_ticket, new_ticket_id
from tests.e2e.conftest import SpawnWorker, WorkerProcess
from tests.fake_anthropic import FakeAnthropic, message, tool_use
from tests.helpers import containers_created, no_containers_left
from workflows.client import submit_ticket
from workflows.engine import connect
from workflows.models import TicketStatus
from workflows.settings import Settings
from workflows.support import build_support_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

SLOW = "import time\ntime.sleep(10)\nprint('slow step done')\n"


def _code(code: str, purpose: str) -> dict[str, str]:
    return {"language": "python", "code": code, "purpose": purpose}


async def _code_runs(hatchet: Hatchet, ticket_id: str) -> dict[str, str]:
    """The ticket's run-code tasks: purpose -> task id."""
    rows = (
        await hatchet.runs.aio_list(additional_metadata={"ticket_id": ticket_id}, only_tasks=True)
    ).rows
    return {
        (row.additional_metadata or {}).get("purpose", ""): row.task_external_id
        for row in rows
        if (row.workflow_name or "").endswith("run-code")
    }


async def _assigned_workers(hatchet: Hatchet, task_id: str) -> list[str]:
    """The worker ids a task was assigned to, oldest first (the REST API's task events)."""

    def fetch() -> list[str]:
        with hatchet.runs.client() as client:
            events = TaskApi(client).v1_task_event_list(task=task_id, limit=500)
        rows = sorted(events.rows or [], key=lambda e: e.timestamp)
        return [
            e.worker_id for e in rows if e.event_type == V1TaskEventType.ASSIGNED and e.worker_id
        ]

    return await asyncio.to_thread(fetch)


async def _worker_ids(hatchet: Hatchet, names: list[str]) -> dict[str, str]:
    """Worker name (as started) -> id, for the workers this test started."""
    listed = (await hatchet.workers.aio_list()).rows or []
    ids: dict[str, str] = {}
    for worker in listed:
        for name in names:
            if worker.name.endswith(name):
                ids[name] = worker.metadata.id
    return ids


async def test_sigkilled_sandbox_worker_fails_over_to_the_other_one(
    settings: Settings, fake_claude: FakeAnthropic, spawn_worker: SpawnWorker
) -> None:
    namespace = f"fo{new_ticket_id('').strip('-').lower()}"
    hatchet = connect(settings, namespace=namespace)
    support = build_support_workflow(hatchet, settings)
    tag = namespace[-6:]
    names = [f"sandbox-a-{tag}", f"sandbox-b-{tag}", f"no-sandbox-{tag}"]
    base = {
        **fake_claude.env(),
        "SUPPORT_AGENT_LLM": "claude",
        "SUPPORT_AGENT_SANDBOX__POOL_SIZE": "0",
    }
    workers: dict[str, WorkerProcess] = {
        names[0]: spawn_worker(namespace, {**base, "SUPPORT_AGENT_WORKER_NAME": names[0]}),
        names[1]: spawn_worker(namespace, {**base, "SUPPORT_AGENT_WORKER_NAME": names[1]}),
        names[2]: spawn_worker(
            namespace,
            {**base, "SUPPORT_AGENT_WORKER_NAME": names[2], "SUPPORT_AGENT_RUN_SANDBOXES": "false"},
        ),
    }
    ids = await eventually(
        lambda: _all_registered(hatchet, names), within=60, what="all three workers registered"
    )

    ticket = make_ticket(new_ticket_id("FO"), email="failover@example.com")
    fake_claude.script(
        ticket.ticket_id,
        message(tool_use(RUN_CODE, _code("print('fast step done')", "Fast check"))),
        message(tool_use(RUN_CODE, _code(SLOW, "Slow check"))),
        message(tool_use(REPLY, {"message": "Done.", "resolved": True})),
    )
    started = time.time()
    ref = await submit_ticket(hatchet, support, ticket, settings, reply_timeout_seconds=300)

    # The slow script is running in its container: find the worker that runs it.
    async def slow_run_started() -> str | None:
        if sum(containers_created(ticket.ticket_id, started).values()) < 2:
            return None
        return (await _code_runs(hatchet, ticket.ticket_id)).get("Slow check")

    slow_task = await eventually(slow_run_started, within=120, what="the slow code run")
    assigned = await eventually(
        lambda: _assigned_workers(hatchet, slow_task), within=30, what="the slow run's worker"
    )
    victim = next(name for name, worker_id in ids.items() if worker_id == assigned[-1])
    assert victim != names[2], "a code run was assigned to the worker without a sandbox"
    survivor = names[1] if victim == names[0] else names[0]
    workers[victim].kill()

    outcome = await asyncio.wait_for(ref.aio_result(), timeout=180)

    assert outcome.status == TicketStatus.RESOLVED and outcome.scripts_run == 2
    # Every model turn was asked for once: the replay repeated none.
    assert len(fake_claude.requests_for(ticket.ticket_id)) == 3
    # The finished fast step ran in one container; only the interrupted slow
    # step ran again, once, on the surviving sandbox worker.
    created = containers_created(ticket.ticket_id, started)
    assert sorted(created.values()) == [1, 2], created
    runs = await _code_runs(hatchet, ticket.ticket_id)
    slow_assigned = await eventually(
        lambda: _reassigned(hatchet, runs["Slow check"]), within=30, what="the reassignment"
    )
    assert slow_assigned[-1] == ids[survivor]
    for task_id in runs.values():  # never on the worker without a sandbox
        assert ids[names[2]] not in await _assigned_workers(hatchet, task_id)
    await no_containers_left(ticket.ticket_id, within=30)
    for name in (survivor, names[2]):
        assert workers[name].process.poll() is None, workers[name].log()[-2000:]


async def _all_registered(hatchet: Hatchet, names: list[str]) -> dict[str, str] | None:
    ids = await _worker_ids(hatchet, names)
    return ids if len(ids) == len(names) else None


async def _reassigned(hatchet: Hatchet, task_id: str) -> list[str] | None:
    assigned = await _assigned_workers(hatchet, task_id)
    return assigned if len(assigned) >= 2 else None
