"""Inputs and outputs of the workflow's tasks: what the dashboard shows for each run."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, PlainSerializer

from agent.attachments import EvidenceRef
from agent.budget import Budget, Spent
from agent.packet import EscalationPacket
from agent.tickets import Category, Priority, Ticket, TriageResult
from workflows.delivery import DeliveryResult


def _join_lines(value: Any) -> Any:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    return value


def _split_lines(text: str) -> list[str]:
    return text.split("\n")


# Text stored in a task's payload as one JSON string per line: the dashboard shows
# a payload as pretty JSON, so a script reads as code (one row a line) instead of
# one long string of "\n" escapes. Joining the lines gives back the exact text.
Lines = Annotated[
    str,
    BeforeValidator(_join_lines),
    PlainSerializer(_split_lines, return_type=list[str], when_used="json"),
]


class TicketRun(BaseModel):
    """Input of one ticket run: the ticket plus the policy it runs under.

    The policy travels with the run instead of being read from the worker's
    environment: after a crash the durable task is replayed, and a replay
    must make exactly the same calls as the first run.
    """

    # No defaults: every field comes from the submitter's Settings (one source of truth).
    ticket: Ticket
    reply_timeout_seconds: float = Field(gt=0)
    reply_lookback_seconds: float = Field(ge=0)
    max_rounds: int = Field(ge=1)
    model: str
    max_tokens: int = Field(ge=256)
    code_timeout_seconds: float = Field(gt=0)
    budget: Budget
    # How the ticket takes its customer's replies (workflows.support): by id, so none is
    # lost or counted twice. False only for runs submitted before replies had ids, which
    # must replay the waits they recorded.
    replies_by_id: bool = False
    # Triaged at submission (rules only, no model): recorded here with the run's input,
    # it costs no task of its own. None for runs submitted before, which replay their
    # triage child.
    triage: TriageResult | None = None


class CodeRunRequest(BaseModel):
    """Input of a ``run-code`` child: the script a reviewer reads in the dashboard."""

    ticket_id: str
    customer: str
    round: int
    step: int
    purpose: str
    language: Literal["python", "bash"]
    code: Lines = Field(description="The script, one string per line.")
    evidence: list[EvidenceRef] = Field(
        description="The files the code gets under /work/input, by sha256 in the evidence store."
    )
    root_run_id: str = Field(description="The ticket run this code run belongs to.")
    timeout_seconds: float


class CodeRunResult(BaseModel):
    """Output of a ``run-code`` child: what the script did."""

    purpose: str
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    duration_seconds: float
    stdout: Lines = Field(description="What the script printed, one string per line.")
    stderr: Lines = Field(description="One string per line.")
    output_files: list[str] = Field(default_factory=list)
    summary: str = Field(description="What the model is shown as the tool result.")
    error: str | None = Field(default=None, description="Set when the sandbox could not run it.")


class ReplyEvent(BaseModel):
    """Input of a ``receive-reply`` child: an event that woke the ticket, as it arrived.

    Any process can push a reply event, so its payload is untrusted: it is
    recorded as it came and validated by the child, never by the durable
    task (a malformed reply must not fail the ticket).
    """

    ticket_id: str
    round: int
    payload: Any = Field(description="The event's payload, unvalidated.")


class ReceivedReply(BaseModel):
    """Output of a ``receive-reply`` child: the customer's reply, or why it was not taken."""

    ticket_id: str
    round: int
    accepted: bool
    message: str = ""
    resolved: bool = False
    error: str | None = Field(default=None, description="Why the payload was refused.")
    reply_id: str | None = Field(
        default=None, description="The payload's valid reply id: the ticket never takes it again."
    )


class ReplyRequest(BaseModel):
    """Input of a ``send-reply`` child: the reply, delivered as ``ticket.replied``."""

    ticket_id: str
    customer_email: str
    round: int
    message: str
    findings: list[str]
    closes_ticket: bool
    run_id: str = Field(default="", description="The ticket run: part of the event's stable id.")
    timestamp: datetime | None = Field(default=None, description="When the agent replied.")


class ReplySent(BaseModel):
    ticket_id: str
    round: int
    message: str
    delivery: DeliveryResult | None = None


class EscalationRequest(BaseModel):
    """Input of an ``escalate-ticket`` child: the packet, delivered as ``ticket.escalated``."""

    run_id: str
    timestamp: datetime
    packet: EscalationPacket


class EscalationRecord(BaseModel):
    ticket_id: str
    reason: str
    summary: str
    delivery: DeliveryResult | None = None


class ResolutionRequest(BaseModel):
    """Input of a ``resolve-ticket`` child: the ticket closes, delivered as ``ticket.resolved``."""

    ticket_id: str
    run_id: str
    timestamp: datetime
    round: int
    resolved_by: Literal["customer", "agent"]
    customer_reply: str | None = None


class ResolutionRecord(BaseModel):
    ticket_id: str
    delivery: DeliveryResult | None = None


class TicketStatus(StrEnum):
    """Where a ticket stands, as the CLI, the API and the transcript report it."""

    QUEUED = "queued"
    DIAGNOSING = "diagnosing"
    WAITING = "waiting"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return "waiting for customer" if self is TicketStatus.WAITING else self.value

    @property
    def closed(self) -> bool:
        return self in _CLOSED


_CLOSED = frozenset(
    {TicketStatus.RESOLVED, TicketStatus.ESCALATED, TicketStatus.FAILED, TicketStatus.CANCELLED}
)


class RunStatus(StrEnum):
    """A Hatchet run's status, as its REST API spells it."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class TicketOutcome(BaseModel):
    """Output of the ticket run: a superset of the Hatchet support-agent cookbook's contract."""

    ticket_id: str
    status: Literal[TicketStatus.RESOLVED, TicketStatus.ESCALATED]
    triage_category: Category
    triage_priority: Priority
    initial_reply: str = Field(description="The first reply sent ('' if escalated before one).")
    replies: list[str] = Field(default_factory=list)
    customer_replies: list[str] = Field(default_factory=list)
    customer_reply: str | None = Field(default=None, description="The last customer reply.")
    refused_replies: list[str] = Field(
        default_factory=list, description="Why reply events that could not be taken were refused."
    )
    escalation_reason: str | None = None
    escalation: EscalationPacket | None = None
    delivery_error: str | None = Field(
        default=None, description="Why the closing event could not be delivered, if it could not."
    )
    rounds: int = 0
    scripts_run: int = 0
    planner: str = ""
    spent: Spent = Field(default_factory=Spent)
