"""Client-side operations: submit a ticket, push a customer's reply, follow a run."""

from __future__ import annotations

import asyncio

from hatchet_sdk import Hatchet, V1TaskStatus
from hatchet_sdk.runnables.workflow import TaskRunRef

from agent.tickets import CustomerReply, Ticket
from workflows.models import TicketOutcome, TicketRun
from workflows.names import REPLY_EVENT, TaskName
from workflows.settings import Settings
from workflows.support import SupportWorkflow


async def submit_ticket(
    hatchet: Hatchet,
    workflow: SupportWorkflow,
    ticket: Ticket,
    settings: Settings,
    *,
    reply_timeout_seconds: float | None = None,
) -> TaskRunRef[TicketRun, TicketOutcome]:
    """Start the durable workflow for a ticket; the ticket id tags every descendant run.

    The run carries its policy (timeouts, rounds, budgets, model), taken from
    the submitter's settings.
    """
    await workflow.register_missing(hatchet)
    return await workflow.ticket.aio_run(
        ticket_run(ticket, settings, reply_timeout_seconds=reply_timeout_seconds),
        wait_for_result=False,
        additional_metadata={"ticket_id": ticket.ticket_id},
    )


def ticket_run(
    ticket: Ticket, settings: Settings, *, reply_timeout_seconds: float | None = None
) -> TicketRun:
    return TicketRun(
        ticket=ticket,
        reply_timeout_seconds=reply_timeout_seconds or settings.reply_timeout_seconds,
        reply_lookback_seconds=settings.reply_lookback_seconds,
        max_rounds=settings.max_rounds,
        model=settings.model,
        max_tokens=settings.max_tokens,
        code_timeout_seconds=settings.code_timeout_seconds,
        budget=settings.budget,
    )


async def push_reply(hatchet: Hatchet, reply: CustomerReply) -> str:
    """Publish the customer's reply; only the run waiting on this ticket id can take it."""
    event = await hatchet.event.aio_push(
        REPLY_EVENT, reply.model_dump(mode="json"), scope=reply.ticket_id
    )
    return event.event_id


async def wait_for_reply_sent(
    hatchet: Hatchet, ticket_id: str, *, within: float, poll_seconds: float = 0.5
) -> None:
    """Block until the agent has sent a reply on this ticket (its send-reply child finished)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        rows = (
            await hatchet.runs.aio_list(
                additional_metadata={"ticket_id": ticket_id}, only_tasks=True
            )
        ).rows
        if any(
            (r.workflow_name or "").endswith(TaskName.SEND_REPLY)
            and r.status == V1TaskStatus.COMPLETED
            for r in rows
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no reply sent on ticket {ticket_id} within {within:g} s")
        await asyncio.sleep(poll_seconds)


async def check_engine(hatchet: Hatchet, *, within: float = 5.0) -> str:
    """The engine's version; EngineUnavailableError when it does not answer ``within`` seconds.

    Called before anything is submitted, so an unreachable engine fails the
    command cleanly instead of half-way through.
    """
    from workflows.engine import EngineUnavailableError

    try:
        version = await asyncio.wait_for(hatchet.aio_get_engine_version(), within)
    except TimeoutError as exc:
        raise EngineUnavailableError(
            f"the Hatchet engine at {hatchet.config.host_port} did not answer within {within:g} s"
        ) from exc
    except Exception as exc:  # gRPC errors: the engine is down or refuses us
        details = getattr(exc, "details", None)
        reason = (details() if callable(details) else None) or str(exc) or type(exc).__name__
        raise EngineUnavailableError(
            f"the Hatchet engine at {hatchet.config.host_port} does not answer: "
            f"{reason.strip().splitlines()[0]}"
        ) from exc
    return version or "unknown"
