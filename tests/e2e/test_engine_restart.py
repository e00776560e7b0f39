"""The engine goes away under running workers, and comes back: nothing is lost or stuck.

Each test has its own namespace and its own workers, which are never
restarted: the workers that lived through the restart (or the network blip)
must finish every ticket. The engine is the session's; a restart leaves it
running for the tests after these.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hatchet_sdk import Hatchet

from agent.tickets import CustomerReply
from agent.tools import REPLY, RUN_CODE
from tests.conftest import make_ticket, new_ticket_id
from tests.e2e.conftest import RestartEngine, SpawnWorker, WorkerProcess
from tests.fake_anthropic import FakeAnthropic, message, tool_use
from tests.helpers import (
    SANDBOX_LABELS,
    containers_created,
    labelled_containers,
    no_containers_left,
)
from tests.netproxy import BlipProxy
from workflows.client import push_reply, submit_ticket, wait_for_reply_sent
from workflows.engine import EngineInfo, connect, running_engine
from workflows.models import TicketOutcome, TicketStatus
from workflows.settings import Settings
from workflows.support import SupportWorkflow, build_support_workflow
from workflows.transcript import fetch_transcript

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PARKED = 5
STALL = "ordered durable completion release stalled"
# Each ticket's children when the customer's first reply resolves it: any
# more would be a finished step repeated by a replay.
ONE_ROUND = Counter({"llm-turn": 1, "send-reply": 1, "receive-reply": 1, "resolve-ticket": 1})


def _namespace(prefix: str) -> str:
    return f"{prefix}{new_ticket_id('').strip('-').lower()}"


def _task_part(workflow_name: str | None) -> str:
    assert workflow_name is not None  # every task run has one
    return workflow_name.rsplit("_", 1)[-1]


async def _children(hatchet: Hatchet, ticket_id: str) -> Counter[str]:
    rows = (
        await hatchet.runs.aio_list(additional_metadata={"ticket_id": ticket_id}, only_tasks=True)
    ).rows
    names = Counter(_task_part(row.workflow_name) for row in rows)
    del names["support-ticket"]
    return names


def _containers(ticket_id: str, *, created_since: float | None = None) -> Counter[str]:
    """The ticket's sandbox containers per code step: alive now, or created since a time."""
    if created_since is not None:
        return containers_created(ticket_id, created_since)
    alive = labelled_containers(f"{SANDBOX_LABELS.ticket}={ticket_id}")
    return Counter(c["Labels"][SANDBOX_LABELS.step] for c in alive)


async def _until(check: Callable[[], Any], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {within:g} s"
        await asyncio.sleep(0.2)


def _alive_through(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        assert worker.process.poll() is None, f"worker exited: {worker.log()[-2000:]}"
        assert STALL not in worker.log()


@pytest.fixture
def fake_claude_worker(
    settings: Settings, fake_claude: FakeAnthropic, spawn_worker: SpawnWorker
) -> Iterator[Callable[..., tuple[Hatchet, SupportWorkflow, WorkerProcess]]]:
    """A client and one 'Claude' worker in a private namespace; no warm pool, so each code
    run creates exactly one container that Docker's events can count."""

    def start(
        prefix: str, extra_env: dict[str, str] | None = None
    ) -> tuple[Hatchet, SupportWorkflow, WorkerProcess]:
        namespace = _namespace(prefix)
        hatchet = connect(settings, namespace=namespace)
        env = {
            **fake_claude.env(),
            "SUPPORT_AGENT_LLM": "claude",
            "SUPPORT_AGENT_SANDBOX__POOL_SIZE": "0",
            **(extra_env or {}),
        }
        return hatchet, build_support_workflow(hatchet, settings), spawn_worker(namespace, env)

    yield start


async def test_engine_restart_while_tickets_wait_the_same_worker_resolves_them(
    settings: Settings, spawn_worker: SpawnWorker, restart_engine: RestartEngine
) -> None:
    namespace = _namespace("rw")
    hatchet = connect(settings, namespace=namespace)
    support = build_support_workflow(hatchet, settings)
    worker = spawn_worker(namespace, {"SUPPORT_AGENT_RUN_SANDBOXES": "false"})
    tickets = [
        make_ticket(new_ticket_id("RW"), email=f"parked{i}@example.com") for i in range(PARKED)
    ]
    refs = [
        await submit_ticket(hatchet, support, t, settings, reply_timeout_seconds=600)
        for t in tickets
    ]
    for ticket in tickets:  # every ticket is parked on its customer
        await wait_for_reply_sent(hatchet, ticket.ticket_id, within=120)

    before = running_engine(settings)
    restart_engine()
    after = running_engine(settings)
    # The same API token: a restart neither mints another live one nor cuts
    # off clients that hold the old one.
    assert before is not None and after is not None and after.pid != before.pid
    assert after.token == before.token
    for ticket in tickets:
        await push_reply(
            hatchet, CustomerReply(ticket_id=ticket.ticket_id, message="works now", resolved=True)
        )
    outcomes: list[TicketOutcome] = await asyncio.wait_for(
        asyncio.gather(*(r.aio_result() for r in refs)), timeout=180
    )

    assert [(o.status, o.customer_reply) for o in outcomes] == [("resolved", "works now")] * PARKED
    for ticket in tickets:
        assert await _children(hatchet, ticket.ticket_id) == ONE_ROUND
    # Finished by the worker that was parked on them, never restarted.
    _alive_through([worker])


async def test_engine_restart_during_a_code_run_finishes_the_ticket(
    fake_claude_worker: Callable[..., tuple[Hatchet, SupportWorkflow, WorkerProcess]],
    fake_claude: FakeAnthropic,
    settings: Settings,
    restart_engine: RestartEngine,
) -> None:
    hatchet, support, worker = fake_claude_worker("rc")
    ticket = make_ticket(new_ticket_id("RC"), email="coder@example.com")
    slow = "import time\ntime.sleep(8)\nprint('slow step done')\n"
    fake_claude.script(
        ticket.ticket_id,
        message(tool_use(RUN_CODE, {"language": "python", "code": slow, "purpose": "Slow check"})),
        message(tool_use(REPLY, {"message": "Done.", "resolved": True})),
    )
    started = time.time()
    ref = await submit_ticket(hatchet, support, ticket, settings, reply_timeout_seconds=300)
    await _until(lambda: _containers(ticket.ticket_id), 120, "the code run's container")

    restart_engine()
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=180)

    assert outcome.status == TicketStatus.RESOLVED and outcome.scripts_run == 1
    scripts = (await fetch_transcript(hatchet, ref.workflow_run_id)).scripts
    assert [s.stdout.strip() for s in scripts] == ["slow step done"]
    # Each model turn was asked for once, and the code ran in one container:
    # nothing was repeated, nothing was lost.
    assert len(fake_claude.requests_for(ticket.ticket_id)) == 2
    assert sorted(_containers(ticket.ticket_id, created_since=started).values()) == [1]
    await no_containers_left(ticket.ticket_id, within=30)
    _alive_through([worker])


async def test_a_network_blip_between_worker_and_engine_loses_nothing(
    fake_claude: FakeAnthropic,
    settings: Settings,
    spawn_worker: SpawnWorker,
    engine: EngineInfo | None,
    tmp_path: Path,
) -> None:
    info = running_engine(settings)
    if info is None:
        pytest.skip("the blip is put between a worker and the embedded engine's gRPC port")
    namespace = _namespace("nb")
    hatchet = connect(settings, namespace=namespace)
    support = build_support_workflow(hatchet, settings)
    parked = [make_ticket(new_ticket_id("NP"), email=f"p{i}@example.com") for i in range(3)]
    coding = make_ticket(new_ticket_id("NC"), email="coder@example.com")
    for ticket in parked:
        fake_claude.script(ticket.ticket_id, message(tool_use(REPLY, {"message": "Try this."})))
    slow = "import time\ntime.sleep(6)\nprint('slow step done')\n"
    fake_claude.script(
        coding.ticket_id,
        message(tool_use(RUN_CODE, {"language": "python", "code": slow, "purpose": "Slow check"})),
        message(tool_use(REPLY, {"message": "Done.", "resolved": True})),
    )
    with BlipProxy(int(info.grpc_address.rsplit(":", 1)[1])) as proxy:
        # The worker reaches the engine's gRPC port only through the proxy.
        state_dir = tmp_path / "worker-state"
        state_dir.mkdir()
        handshake = json.loads(settings.engine_file.read_text())
        handshake["grpc_address"] = f"127.0.0.1:{proxy.port}"
        (state_dir / "engine.json").write_text(json.dumps(handshake))
        worker = spawn_worker(
            namespace,
            {
                **fake_claude.env(),
                "SUPPORT_AGENT_LLM": "claude",
                "SUPPORT_AGENT_SANDBOX__POOL_SIZE": "0",
                "SUPPORT_AGENT_STATE_DIR": str(state_dir),
            },
        )
        refs = [
            await submit_ticket(hatchet, support, t, settings, reply_timeout_seconds=300)
            for t in parked
        ]
        for ticket in parked:
            await wait_for_reply_sent(hatchet, ticket.ticket_id, within=120)
        coding_ref = await submit_ticket(
            hatchet, support, coding, settings, reply_timeout_seconds=300
        )
        await _until(lambda: _containers(coding.ticket_id), 120, "the code run's container")

        assert proxy.blip(down_seconds=3) > 0
        for ticket in parked:
            await push_reply(
                hatchet, CustomerReply(ticket_id=ticket.ticket_id, message="ok", resolved=True)
            )
        outcomes: list[TicketOutcome] = await asyncio.wait_for(
            asyncio.gather(*(r.aio_result() for r in [*refs, coding_ref])), timeout=180
        )

    assert [o.status for o in outcomes] == ["resolved"] * 4
    for ticket in parked:
        assert await _children(hatchet, ticket.ticket_id) == ONE_ROUND
    assert len(fake_claude.requests_for(coding.ticket_id)) == 2
    await no_containers_left(coding.ticket_id, within=30)
    _alive_through([worker])
