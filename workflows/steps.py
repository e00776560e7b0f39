"""What each child task does, as plain functions of their inputs and services.

The Hatchet tasks in ``workflows.tasks`` are thin wrappers around these, and
``workflows.local`` calls the same functions in-process, so a unit test of
the diagnose loop runs the real step logic with the package's fakes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agent.llm import TextSink, TurnRequest, TurnResult
from agent.packet import EscalationPacket
from agent.tickets import REPLY_ID_PATTERN, RUN_ID_PATTERN, CustomerReply
from agent.validation import first_error
from sandbox import ExecutionRequest
from workflows.delivery import DeliveryEvent, DeliveryResult, EventType, event_id, skipped
from workflows.deps import Dependencies
from workflows.models import (
    CodeRunRequest,
    CodeRunResult,
    EscalationRecord,
    EscalationRequest,
    ReceivedReply,
    ReplyEvent,
    ReplyRequest,
    ReplySent,
    ResolutionRecord,
    ResolutionRequest,
)
from workflows.streams import STDERR_TAIL, STDOUT_TAIL, CodeFinished, CodeStarted

Emit = Callable[[CodeStarted | CodeFinished], Awaitable[None]]


async def complete_turn(
    deps: Dependencies, request: TurnRequest, on_text: TextSink | None = None
) -> TurnResult:
    return await deps.llm.complete(request, on_text=on_text)


async def execute_code(
    deps: Dependencies, request: CodeRunRequest, *, step_id: str, emit: Emit | None = None
) -> CodeRunResult:
    """Run one script in a fresh sandbox with the ticket's attachments.

    ``step_id`` names the container: unique per code run and stable across
    retries, so a retry replaces its own earlier attempt's container.
    """
    if emit is not None:
        await emit(CodeStarted(step=request.step, purpose=request.purpose))
    files = await deps.evidence.inputs(request.evidence, request.ticket_id)
    result = await deps.require_sandbox().run(
        ExecutionRequest(
            code=request.code,
            language=request.language,
            files=files,
            timeout_seconds=request.timeout_seconds,
            ticket_id=request.ticket_id,
            run_id=request.root_run_id,
            step_id=step_id,
        )
    )
    if emit is not None:
        await emit(
            CodeFinished(
                step=request.step,
                stdout=result.stdout[-STDOUT_TAIL:],
                stderr=result.stderr[-STDERR_TAIL:],
                exit_code=result.exit_code,
            )
        )
    return CodeRunResult(
        purpose=request.purpose,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        oom_killed=result.oom_killed,
        duration_seconds=result.duration_seconds,
        stdout=result.stdout,
        stderr=result.stderr,
        output_files=[f.name for f in result.output_files],
        summary=result.summary(),
    )


def addressed_run(event: ReplyEvent) -> str | None:
    """The ticket run a reply payload says it answers, if it names one in the right form."""
    payload = event.payload
    run_id = payload.get("run_id") if isinstance(payload, dict) else None
    if isinstance(run_id, str) and re.fullmatch(RUN_ID_PATTERN, run_id):
        return run_id
    return None


def receive_reply(event: ReplyEvent, *, closed_run: str | None = None) -> ReceivedReply:
    """Validate a reply event's payload; a refusal is data, never an exception.

    A payload that carries only the message (the scope names the ticket, as
    Hatchet's own examples push it) is taken for the waiting ticket; one that
    names another ticket is refused. A valid reply id is returned even with a
    refusal, so the ticket never takes that payload again.
    """
    payload = event.payload
    if not isinstance(payload, dict):
        return _refused(event, f"the payload is {type(payload).__name__}, not a JSON object")
    reply_id = _valid_reply_id(payload.get("reply_id"))
    named = payload.get("ticket_id", event.ticket_id)
    if named != event.ticket_id:
        return _refused(event, f"the payload names ticket {str(named)[:80]!r}", reply_id)
    try:
        reply = CustomerReply.model_validate({**payload, "ticket_id": event.ticket_id})
    except ValidationError as exc:
        return _refused(event, first_error(exc), reply_id)
    if closed_run is not None:
        # An earlier run's reply, within this run's lookback (the ticket was
        # closed and opened again): that run has answered it already.
        return _refused(
            event, f"the reply answers run {closed_run} of this ticket, which has closed", reply_id
        )
    return ReceivedReply(
        ticket_id=event.ticket_id,
        round=event.round,
        accepted=True,
        message=reply.message,
        resolved=reply.resolved,
        reply_id=reply.reply_id,
    )


def _valid_reply_id(value: object) -> str | None:
    """The payload's reply id if it is one (it goes into a CEL filter), else None."""
    if isinstance(value, str) and re.fullmatch(REPLY_ID_PATTERN, value):
        return value
    return None


def _refused(event: ReplyEvent, error: str, reply_id: str | None = None) -> ReceivedReply:
    return ReceivedReply(
        ticket_id=event.ticket_id, round=event.round, accepted=False, error=error, reply_id=reply_id
    )


def escalation_summary(packet: EscalationPacket) -> str:
    replies = len(packet.customer_replies)
    return (
        f"Ticket {packet.ticket_id} ({packet.triage.category}, {packet.triage.priority}) "
        f"from {packet.customer_email}: {packet.subject}. Escalated: {packet.reason}. "
        f"{len(packet.scripts)} script(s) run, {replies} customer "
        f"repl{'y' if replies == 1 else 'ies'}."
    )


NO_DELIVERY = "no SUPPORT_AGENT_DELIVERY_URL configured"


async def deliver(
    deps: Dependencies,
    kind: EventType,
    run_id: str,
    round_number: int,
    timestamp: datetime,
    data: dict[str, Any],
) -> DeliveryResult:
    event = DeliveryEvent(
        id=event_id(run_id, kind, round_number), type=kind, timestamp=timestamp, data=data
    )
    if deps.delivery is None:
        return skipped(event, NO_DELIVERY)
    return await deps.delivery.deliver(event)


async def send_reply(deps: Dependencies, request: ReplyRequest) -> ReplySent:
    """The agent's reply to the customer, delivered as ``ticket.replied``."""
    data = request.model_dump(
        mode="json", include={"ticket_id", "round", "message", "findings", "closes_ticket"}
    )
    delivery = await deliver(
        deps,
        "ticket.replied",
        request.run_id,
        request.round,
        request.timestamp or datetime.now(tz=UTC),
        {**data, "customer_email": request.customer_email, "run_id": request.run_id},
    )
    return ReplySent(
        ticket_id=request.ticket_id, round=request.round, message=request.message, delivery=delivery
    )


async def escalate(deps: Dependencies, request: EscalationRequest) -> EscalationRecord:
    """The hand-over to a human, delivered as ``ticket.escalated`` with the whole packet."""
    packet = request.packet
    delivery = await deliver(
        deps,
        "ticket.escalated",
        request.run_id,
        0,
        request.timestamp,
        {
            "ticket_id": packet.ticket_id,
            "run_id": request.run_id,
            "reason": packet.reason,
            "packet": packet.model_dump(mode="json"),
        },
    )
    return EscalationRecord(
        ticket_id=packet.ticket_id,
        reason=packet.reason,
        summary=escalation_summary(packet),
        delivery=delivery,
    )


async def resolve(deps: Dependencies, request: ResolutionRequest) -> ResolutionRecord:
    """The ticket is closed as resolved, delivered as ``ticket.resolved``."""
    delivery = await deliver(
        deps,
        "ticket.resolved",
        request.run_id,
        0,
        request.timestamp,
        request.model_dump(mode="json", exclude={"timestamp"}),
    )
    return ResolutionRecord(ticket_id=request.ticket_id, delivery=delivery)
