"""The durable support workflow: triage, first reply, then wait for the customer or time out.

The durable task only orchestrates. Every side effect (triage, drafting,
escalation) is a child task, so after a worker crash the engine replays the
durable task from its event log: finished children return their stored
output instead of running again, and the wait resumes where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from hatchet_sdk import (
    Context,
    DurableContext,
    Hatchet,
    SleepCondition,
    UserEventCondition,
    or_,
)
from hatchet_sdk.runnables.eviction import EvictionPolicy
from hatchet_sdk.runnables.workflow import Standalone
from pydantic import BaseModel, Field

from agent.replies import acknowledgement
from agent.tickets import CustomerReply, Ticket, TicketOutcome, TriageResult
from agent.triage import triage
from workflows.settings import Settings

REPLY_EVENT = "support:customer-reply"
REPLY_WAIT_KEY = "customer-reply"


class TicketRun(BaseModel):
    """Input of one ticket run: the ticket plus the policy it runs under.

    The reply timeout travels with the run instead of being read from the
    worker's environment: a durable wait is replayed after a crash, and a
    replayed wait must be identical to the first one.
    """

    ticket: Ticket
    reply_timeout_seconds: float = Field(gt=0)
    reply_lookback_seconds: float = Field(default=300, ge=0)


class DraftRequest(BaseModel):
    ticket: Ticket
    triage: TriageResult


class DraftReply(BaseModel):
    message: str


class EscalationRequest(BaseModel):
    ticket: Ticket
    triage: TriageResult
    initial_reply: str
    reason: str


class EscalationRecord(BaseModel):
    ticket_id: str
    reason: str
    summary: str


def reply_filter(ticket_id: str) -> str:
    """CEL filter on the event payload, on top of the scope.

    Scoped waits could be woken by another scope's event on some engine
    versions; the ticket id is restricted to [A-Za-z0-9._-], so it needs no
    escaping inside the single-quoted CEL string.
    """
    return f"input.ticket_id == '{ticket_id}'"


def parse_wait_result(result: dict[str, Any]) -> CustomerReply | None:
    """The customer's reply if the event won the race, None if the timeout did."""
    fired: dict[str, list[dict[str, Any]]] = result.get("CREATE", {})
    payloads = fired.get(REPLY_EVENT)
    if not payloads:
        return None
    return CustomerReply.model_validate(payloads[0])


@dataclass(frozen=True)
class SupportWorkflow:
    """The registered tasks; the same definitions serve workers and clients."""

    ticket: Standalone[TicketRun, TicketOutcome]
    triage: Standalone[Ticket, TriageResult]
    draft: Standalone[DraftRequest, DraftReply]
    escalate: Standalone[EscalationRequest, EscalationRecord]

    def all(self) -> list[Any]:
        return [self.ticket, self.triage, self.draft, self.escalate]

    async def register(self, hatchet: Hatchet) -> None:
        """Register the definitions with the engine (idempotent).

        The engine silently drops a run of a workflow it does not know yet, so
        clients register before submitting: a ticket then queues until a
        worker is available instead of depending on a worker having started.
        """
        for runnable in self.all():
            await hatchet._client.admin.aio_put_workflow(runnable.to_proto())


def build_support_workflow(hatchet: Hatchet, settings: Settings) -> SupportWorkflow:
    """Declare the workflow's tasks on a client (definitions are cheap and side-effect free)."""

    @hatchet.task(
        name="triage-ticket",
        input_validator=Ticket,
        execution_timeout=timedelta(seconds=30),
        retries=2,
        backoff_factor=2,
    )
    async def triage_ticket(ticket: Ticket, ctx: Context) -> TriageResult:
        return triage(ticket)

    @hatchet.task(
        name="draft-initial-reply",
        input_validator=DraftRequest,
        execution_timeout=timedelta(seconds=60),
        retries=2,
        backoff_factor=2,
    )
    async def draft_initial_reply(request: DraftRequest, ctx: Context) -> DraftReply:
        return DraftReply(message=acknowledgement(request.ticket, request.triage))

    @hatchet.task(
        name="escalate-ticket",
        input_validator=EscalationRequest,
        execution_timeout=timedelta(seconds=60),
        retries=2,
        backoff_factor=2,
    )
    async def escalate_ticket(request: EscalationRequest, ctx: Context) -> EscalationRecord:
        summary = (
            f"Ticket {request.ticket.ticket_id} ({request.triage.category}, "
            f"{request.triage.priority}) from {request.ticket.customer_email}: "
            f"{request.ticket.subject}. Escalated: {request.reason}."
        )
        ctx.log(summary)
        return EscalationRecord(
            ticket_id=request.ticket.ticket_id, reason=request.reason, summary=summary
        )

    @hatchet.durable_task(
        name="support-ticket",
        input_validator=TicketRun,
        execution_timeout=settings.ticket_execution_timeout,
        # A long wait is evicted from the worker (freeing its slot) and restored
        # by the engine when the reply or the timeout arrives.
        eviction_policy=EvictionPolicy(ttl=timedelta(seconds=settings.eviction_ttl_seconds)),
    )
    async def support_ticket(run: TicketRun, ctx: DurableContext) -> TicketOutcome:
        ticket = run.ticket
        triaged = await triage_ticket.aio_run(ticket)
        draft = await draft_initial_reply.aio_run(DraftRequest(ticket=ticket, triage=triaged))

        # aio_now is memoized in the durable log, so the lookback window is
        # the same on every replay.
        started = await ctx.aio_now()
        result = await ctx.aio_wait_for(
            REPLY_WAIT_KEY,
            or_(
                SleepCondition(timedelta(seconds=run.reply_timeout_seconds)),
                UserEventCondition(
                    event_key=REPLY_EVENT,
                    scope=ticket.ticket_id,
                    expression=reply_filter(ticket.ticket_id),
                    consider_events_since=started - timedelta(seconds=run.reply_lookback_seconds),
                ),
            ),
            label="waiting for the customer's reply",
        )

        def outcome(
            status: Literal["resolved", "escalated"],
            customer_reply: str | None = None,
            escalation_reason: str | None = None,
        ) -> TicketOutcome:
            return TicketOutcome(
                ticket_id=ticket.ticket_id,
                status=status,
                triage_category=triaged.category,
                triage_priority=triaged.priority,
                initial_reply=draft.message,
                customer_reply=customer_reply,
                escalation_reason=escalation_reason,
            )

        reply = parse_wait_result(result)
        if reply is not None:
            return outcome("resolved", customer_reply=reply.message)

        reason = f"no reply from the customer within {run.reply_timeout_seconds:g} s"
        await escalate_ticket.aio_run(
            EscalationRequest(
                ticket=ticket, triage=triaged, initial_reply=draft.message, reason=reason
            )
        )
        return outcome("escalated", escalation_reason=reason)

    return SupportWorkflow(
        ticket=support_ticket,
        triage=triage_ticket,
        draft=draft_initial_reply,
        escalate=escalate_ticket,
    )
