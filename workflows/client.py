"""Client-side operations: submit a ticket, push a customer's reply, follow a run."""

from __future__ import annotations

import asyncio

from hatchet_sdk import Hatchet, V1TaskStatus
from hatchet_sdk.clients.rest.exceptions import NotFoundException
from hatchet_sdk.runnables.workflow import TaskRunRef

from agent.tickets import CustomerReply, Ticket, new_reply_id
from agent.triage import triage
from evidence.ingest import IngestResult, Upload, ingest
from evidence.store import EvidenceStore
from workflows.models import RunStatus, TicketOutcome, TicketRun
from workflows.names import REPLY_EVENT, TaskName
from workflows.settings import Settings
from workflows.support import SupportWorkflow
from workflows.transcript import TaskRun, describe, summarize_run, ticket_runs


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


def ingest_evidence(
    settings: Settings, store: EvidenceStore, ticket_id: str, uploads: list[Upload]
) -> IngestResult:
    """Put a ticket's uploads into the evidence store under the settings' limits and retention.

    Blocking (it streams every file): call it in a thread from async code.
    Raises ``EvidenceRefusedError`` (input over a limit, before anything is
    stored) or ``StoreUnavailableError``.
    """
    return ingest(
        store,
        uploads,
        settings.evidence,
        ticket_id=ticket_id,
        retention=settings.evidence_retention,
    )


def with_evidence(ticket: Ticket, result: IngestResult) -> Ticket:
    """The ticket with its attachments' references, checked by the ticket model again."""
    return Ticket.model_validate(
        {**ticket.model_dump(exclude={"attachments"}), "attachments": result.attachments}
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
        replies_by_id=True,
        triage=triage(ticket),
    )


class TicketNotFoundError(LookupError):
    """No run of this ticket id in this namespace (within the last 7 days)."""


class TicketClosedError(RuntimeError):
    """The ticket's latest run has finished: nothing waits for a reply."""


class TicketLiveError(RuntimeError):
    """The ticket already has a run in progress."""


async def latest_run(hatchet: Hatchet, ticket_id: str) -> TaskRun | None:
    runs = await ticket_runs(hatchet, limit=1, ticket_id=ticket_id)
    return runs[0] if runs else None


async def open_ticket(
    hatchet: Hatchet,
    workflow: SupportWorkflow,
    ticket: Ticket,
    settings: Settings,
    *,
    reply_timeout_seconds: float | None = None,
    restart: bool = False,
    known_run_id: str | None = None,
) -> str:
    """Start a ticket's run unless one is live; ``restart`` replaces a live run instead.

    A live run is never cancelled by accident (a helpdesk re-sending a ticket
    it already sent): only a caller that asks to restart gets a new run, and
    the old one is then cancelled by the workflow's per-ticket concurrency.
    ``known_run_id`` is the run the caller itself last started for this
    ticket: looked up by id, it is seen at once, where the engine's run list
    shows a new run only after a moment.
    """
    if not restart:
        live = await _live_run(hatchet, ticket.ticket_id, known_run_id)
        if live is not None:
            raise TicketLiveError(
                f"ticket {ticket.ticket_id} already has a run in progress ({live})"
            )
    ref = await submit_ticket(
        hatchet, workflow, ticket, settings, reply_timeout_seconds=reply_timeout_seconds
    )
    return ref.workflow_run_id


async def _live_run(hatchet: Hatchet, ticket_id: str, known_run_id: str | None) -> str | None:
    if known_run_id is not None:
        try:
            status = await hatchet.runs.aio_get_status(known_run_id)
        except NotFoundException:
            return known_run_id  # accepted a moment ago and not readable yet: live
        if not RunStatus(str(getattr(status, "value", status))).finished:
            return known_run_id
    current = await latest_run(hatchet, ticket_id)
    return current.run_id if current is not None and not current.finished else None


async def reply_to_ticket(hatchet: Hatchet, reply: CustomerReply) -> str:
    """Push the customer's reply to a ticket that is waiting; the event's id."""
    current = await latest_run(hatchet, reply.ticket_id)
    if current is None:
        raise TicketNotFoundError(f"no ticket {reply.ticket_id} in {describe(hatchet)}")
    if current.finished:
        summary = await summarize_run(hatchet, current)
        state = summary.status.label if summary else current.status.lower()
        raise TicketClosedError(
            f"ticket {reply.ticket_id} is closed ({state}); nothing waits for a reply"
        )
    return await push_reply(hatchet, reply.model_copy(update={"run_id": current.run_id}))


async def push_reply(hatchet: Hatchet, reply: CustomerReply) -> str:
    """Publish the customer's reply; only the run waiting on this ticket id can take it.

    A reply without an id gets one: the ticket takes each id once.
    """
    if reply.reply_id is None:
        reply = reply.model_copy(update={"reply_id": new_reply_id()})
    event = await hatchet.event.aio_push(
        REPLY_EVENT, reply.model_dump(mode="json", exclude_none=True), scope=reply.ticket_id
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
