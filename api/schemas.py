"""Request and response bodies of the HTTP API (they are its OpenAPI document).

Ticket fields use the ticket model's own types (``agent.tickets``), so the
API refuses exactly what the command line refuses, with the same messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.tickets import Body, Email, ReplyText, Subject, TicketId
from workflows.models import TicketStatus

MAX_REPLY_TIMEOUT_SECONDS = 30 * 24 * 3600

ApiStatus = Literal[
    "investigating", "waiting for customer", "resolved", "escalated", "failed", "cancelled"
]


def api_status(status: TicketStatus) -> ApiStatus:
    """The helpdesk's vocabulary: queued and diagnosing are both 'investigating'."""
    if status in (TicketStatus.QUEUED, TicketStatus.DIAGNOSING):
        return "investigating"
    if status is TicketStatus.WAITING:
        return "waiting for customer"
    return status.value  # type: ignore[return-value]


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A plain file name: letters, digits, '.', '_', '-'.")
    content_base64: str


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket_id: TicketId | None = Field(
        default=None, description="Your ticket id (default: a new T-<12 hex digits>)."
    )
    customer_email: Email
    subject: Subject
    body: Body
    attachments: list[AttachmentIn] = Field(default_factory=list)
    reply_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_REPLY_TIMEOUT_SECONDS,
        description="How long to wait for the customer's reply before escalating.",
    )
    restart: bool = Field(
        default=False,
        description="Replace a run of this ticket that is still in progress (otherwise 409).",
    )


class TicketAccepted(BaseModel):
    ticket_id: str
    run_id: str


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: ReplyText
    resolved: bool = Field(default=False, description="The customer says it is solved.")


class ReplyAccepted(BaseModel):
    ticket_id: str
    event_id: str


class Message(BaseModel):
    """One message of the conversation, either way."""

    direction: Literal["agent", "customer"]
    round: int
    message: str
    accepted: bool = Field(default=True, description="False: a reply event that was refused.")
    error: str | None = None


class ScriptOut(BaseModel):
    step: int
    round: int
    purpose: str
    language: str
    status: str
    exit_code: int | None
    timed_out: bool
    duration_seconds: float


class TicketRow(BaseModel):
    ticket_id: str
    run_id: str
    status: ApiStatus
    subject: str
    customer_email: str
    created_at: datetime
    finished_at: datetime | None


class TicketOut(TicketRow):
    messages: list[Message]
    scripts: list[ScriptOut]
    escalation_reason: str | None = None
    tokens: int
    sandbox_seconds: float


class TicketPage(BaseModel):
    tickets: list[TicketRow]
    next_offset: int | None = Field(description="Pass as ?offset= for the next page; null: none.")


class ErrorOut(BaseModel):
    error: str
    field: str | None = None
