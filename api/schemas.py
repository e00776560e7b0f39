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


class TicketIn(BaseModel):
    """The ticket's fields: a JSON body, or the text fields of a multipart/form-data upload.

    Attachments come only as multipart file parts named ``attachments``
    (streamed into the evidence store, never inside a JSON document).
    """

    model_config = ConfigDict(extra="forbid")

    ticket_id: TicketId | None = Field(
        default=None, description="Your ticket id (default: a new T-<12 hex digits>)."
    )
    customer_email: Email
    subject: Subject
    body: Body
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


class AttachmentOut(BaseModel):
    name: str
    media_type: str
    size: int
    sha256: str
    unpacked_files: int | None = Field(
        default=None, description="Files an archive unpacked to; null: not an archive."
    )


class TicketAccepted(BaseModel):
    ticket_id: str
    run_id: str
    attachments: list[AttachmentOut] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list, description="E.g. an archive that was not unpacked, and why."
    )


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
