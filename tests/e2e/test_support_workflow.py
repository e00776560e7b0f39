"""The durable support workflow on the real engine, with real worker processes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from hatchet_sdk import Hatchet
from hatchet_sdk.runnables.workflow import TaskRunRef

from agent.tickets import CustomerReply, Ticket
from tests.conftest import eventually, make_ticket, new_ticket_id
from tests.e2e.conftest import SpawnWorker
from workflows.client import push_reply, reply_to_ticket, submit_ticket, wait_for_reply_sent
from workflows.engine import connect
from workflows.models import TicketOutcome, TicketRun, TicketStatus
from workflows.names import REPLY_EVENT
from workflows.settings import Settings
from workflows.support import SupportWorkflow, build_support_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
SETTINGS = Settings()
# The children of a ticket resolved by the customer's first reply, each exactly once.
ONE_ROUND_RESOLVED = Counter(
    {"llm-turn": 1, "send-reply": 1, "receive-reply": 1, "resolve-ticket": 1}
)


def _ticket(ticket_id: str) -> Ticket:
    return make_ticket(ticket_id, email="ops@example.com")


def _task_part(workflow_name: str | None) -> str:
    assert workflow_name is not None  # every task run has one
    return workflow_name.rsplit("_", 1)[-1]


async def child_task_names(hatchet: Hatchet, ticket_id: str) -> Counter[str]:
    """How many times each child task ran for a ticket (children inherit its metadata)."""
    rows = (
        await hatchet.runs.aio_list(additional_metadata={"ticket_id": ticket_id}, only_tasks=True)
    ).rows
    # Namespaced names look like "<namespace>_triage-ticket"; keep the task part.
    names = Counter(_task_part(row.workflow_name) for row in rows)
    del names["support-ticket"]
    return names


async def parked(
    hatchet: Hatchet, support: SupportWorkflow, prefix: str, reply_timeout: float
) -> tuple[Ticket, TaskRunRef[TicketRun, TicketOutcome]]:
    """A new ticket, submitted and waiting for its customer (its first reply has gone out)."""
    ticket = _ticket(new_ticket_id(prefix))
    ref = await submit_ticket(
        hatchet, support, ticket, SETTINGS, reply_timeout_seconds=reply_timeout
    )
    await wait_for_reply_sent(hatchet, ticket.ticket_id, within=60)
    return ticket, ref


async def test_reply_pushed_right_after_start_resolves(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    ticket = _ticket(new_ticket_id())
    ref = await submit_ticket(hatchet, support, ticket, SETTINGS, reply_timeout_seconds=120)
    # Pushed before the workflow can possibly be waiting: only the lookback finds it.
    await push_reply(
        hatchet, CustomerReply(ticket_id=ticket.ticket_id, message="works now", resolved=True)
    )
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=90)

    assert outcome.status == TicketStatus.RESOLVED
    assert outcome.customer_reply == "works now"
    assert (outcome.triage_category, outcome.triage_priority) == ("data", "medium")
    assert "attach" in outcome.initial_reply  # no evidence yet: the agent asks for it
    assert outcome.escalation_reason is None
    children = await child_task_names(hatchet, ticket.ticket_id)
    assert children == ONE_ROUND_RESOLVED


async def test_no_reply_escalates_after_the_timeout(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    ticket = _ticket(new_ticket_id())
    started = time.monotonic()
    ref = await submit_ticket(hatchet, support, ticket, SETTINGS, reply_timeout_seconds=3)
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=90)

    assert outcome.status == TicketStatus.ESCALATED
    assert time.monotonic() - started >= 3
    assert outcome.customer_reply is None
    assert outcome.escalation_reason == "no reply from the customer within 3 s"
    assert outcome.escalation is not None
    assert outcome.escalation.reason == outcome.escalation_reason
    assert outcome.escalation.replies_sent == [outcome.initial_reply]
    children = await child_task_names(hatchet, ticket.ticket_id)
    assert children["escalate-ticket"] == 1


async def test_a_reply_wakes_only_its_own_ticket(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    first, second = _ticket(new_ticket_id("A")), _ticket(new_ticket_id("B"))
    ref_first = await submit_ticket(hatchet, support, first, SETTINGS, reply_timeout_seconds=8)
    ref_second = await submit_ticket(hatchet, support, second, SETTINGS, reply_timeout_seconds=8)
    await wait_for_reply_sent(hatchet, first.ticket_id, within=60)
    await wait_for_reply_sent(hatchet, second.ticket_id, within=60)
    await push_reply(
        hatchet, CustomerReply(ticket_id=first.ticket_id, message="solved", resolved=True)
    )
    # A reply published under the second ticket's scope but naming the first
    # ticket must not wake the second one either (scope plus payload filter).
    await hatchet.event.aio_push(
        REPLY_EVENT,
        {"ticket_id": first.ticket_id, "message": "wrong ticket", "resolved": True},
        scope=second.ticket_id,
    )
    outcome_first, outcome_second = await asyncio.wait_for(
        asyncio.gather(ref_first.aio_result(), ref_second.aio_result()), timeout=90
    )
    assert (outcome_first.status, outcome_first.customer_reply) == ("resolved", "solved")
    assert (outcome_second.status, outcome_second.customer_reply) == ("escalated", None)


async def test_ticket_survives_a_sigkilled_worker(
    settings: Settings, spawn_worker: SpawnWorker
) -> None:
    # Its own namespace, so the session's worker cannot take over the ticket.
    namespace = f"kill{new_ticket_id('').lower().strip('-')}"
    hatchet = connect(settings, namespace=namespace)
    support = build_support_workflow(hatchet, settings)
    first_worker = spawn_worker(namespace)

    ticket = _ticket(new_ticket_id("K"))
    ref = await submit_ticket(hatchet, support, ticket, settings, reply_timeout_seconds=300)
    # Wait until the ticket is parked on its reply wait: the reply has gone out.
    await wait_for_reply_sent(hatchet, ticket.ticket_id, within=90)
    await asyncio.sleep(2)

    first_worker.kill()
    # The reply arrives while no worker is alive; the engine holds it.
    await push_reply(
        hatchet,
        CustomerReply(ticket_id=ticket.ticket_id, message="after crash", resolved=True),
    )
    second_worker = spawn_worker(namespace)

    # The engine notices the dead worker after its heartbeat timeout (30 s)
    # and hands the ticket to the new worker, which replays the durable log.
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=180)
    assert (outcome.status, outcome.customer_reply) == ("resolved", "after crash")
    # Finished children were not repeated by the replay.
    children = await child_task_names(hatchet, ticket.ticket_id)
    assert children == ONE_ROUND_RESOLVED
    assert "support-ticket" in second_worker.log()


async def test_a_reply_carrying_only_its_scope_is_taken(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    """Pushed as Hatchet's own support-agent example pushes it: message only, scope = ticket."""
    ticket, ref = await parked(hatchet, support, "S", 60)
    await hatchet.event.aio_push(
        REPLY_EVENT, {"message": "Thanks, it works now."}, scope=ticket.ticket_id
    )
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=90)
    assert (outcome.status, outcome.customer_reply) == ("resolved", "Thanks, it works now.")
    assert outcome.refused_replies == []


async def test_malformed_replies_are_recorded_and_the_ticket_keeps_waiting(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    ticket, ref = await parked(hatchet, support, "M", 60)
    bad_replies: tuple[dict[str, object], ...] = (
        {"ticket_id": ticket.ticket_id},
        {"message": "   "},
        {"message": 42},
    )
    for count, bad in enumerate(bad_replies, 1):
        await hatchet.event.aio_push(REPLY_EVENT, bad, scope=ticket.ticket_id)

        # One at a time: each wakes the ticket, is refused, and the next wait begins.
        async def refused(count: int = count) -> bool:
            names = await child_task_names(hatchet, ticket.ticket_id)
            return names["receive-reply"] >= count

        await eventually(refused, within=30, what=f"refusal {count}")
    await push_reply(
        hatchet, CustomerReply(ticket_id=ticket.ticket_id, message="fixed", resolved=True)
    )
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=90)
    assert (outcome.status, outcome.customer_reply) == ("resolved", "fixed")
    assert outcome.refused_replies == [
        "message: Field required",
        "the message is empty",
        "message: Input should be a valid string",
    ]


async def test_a_valid_reply_right_behind_a_malformed_one_is_taken(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    ticket, ref = await parked(hatchet, support, "MV", 30)
    await hatchet.event.aio_push(
        REPLY_EVENT, {"message": " ", "reply_id": "r-blank"}, scope=ticket.ticket_id
    )
    await push_reply(
        hatchet, CustomerReply(ticket_id=ticket.ticket_id, message="fixed", resolved=True)
    )
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=90)
    assert (outcome.status, outcome.customer_reply) == ("resolved", "fixed"), outcome
    # Taken once each, in whichever order the engine matched them.
    assert outcome.refused_replies in ([], ["the message is empty"])


async def test_a_new_run_of_a_ticket_does_not_take_the_last_runs_reply(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    """The lookback reaches before a run's start; a reply addressed to the run before is not its."""
    ticket, first = await parked(hatchet, support, "RE", 30)
    await reply_to_ticket(
        hatchet, CustomerReply(ticket_id=ticket.ticket_id, message="works", resolved=True)
    )
    assert (await asyncio.wait_for(first.aio_result(), timeout=90)).status == TicketStatus.RESOLVED

    again = await submit_ticket(hatchet, support, ticket, SETTINGS, reply_timeout_seconds=3)
    outcome = await asyncio.wait_for(again.aio_result(), timeout=90)
    assert (outcome.status, outcome.customer_replies) == ("escalated", []), outcome
    assert outcome.escalation_reason == "no reply from the customer within 3 s"


async def test_a_reply_to_a_replaced_run_is_taken_by_the_run_that_replaced_it(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    """The run list lags: right after a ticket is sent again, a reply names the run it replaced."""
    ticket, first = await parked(hatchet, support, "RP", 60)
    second = await submit_ticket(hatchet, support, ticket, SETTINGS, reply_timeout_seconds=60)
    reply = CustomerReply(
        ticket_id=ticket.ticket_id, message="works", resolved=True, run_id=first.workflow_run_id
    )
    await push_reply(hatchet, reply)
    outcome = await asyncio.wait_for(second.aio_result(), timeout=90)
    assert (outcome.status, outcome.customer_reply) == ("resolved", "works"), outcome
