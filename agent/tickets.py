"""What a support ticket is, as the workflow receives it and reports on it."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from agent.attachments import Attachment, check_attachment_set
from agent.validation import pattern_rule, pattern_schema, refuse, text_rule, text_schema

# Ticket ids end up in event scopes and in a CEL filter expression, so they are
# restricted to characters that need no quoting anywhere.
TICKET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}\.[^@\s\x00-\x1f\x7f]{1,63}$"
)
MAX_SUBJECT = 300
MAX_BODY = 100_000
MAX_REPLY = 100_000


def _check_email(value: str) -> str:
    email = value.strip()
    if not _EMAIL.match(email):
        raise refuse(f"not a valid customer email address: {value[:200]!r}")
    return email


def _bad_ticket_id(value: str) -> str:
    return (
        f"not a valid ticket id: {value[:100]!r} (a letter or digit, then up to 63 letters, "
        "digits, '.', '_' or '-')"
    )


TicketId = Annotated[
    str,
    pattern_rule(TICKET_ID_PATTERN, _bad_ticket_id),
    pattern_schema(TICKET_ID_PATTERN, 64),
]
Email = Annotated[
    str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})
]
Subject = Annotated[str, text_rule("subject", MAX_SUBJECT), text_schema(MAX_SUBJECT)]
Body = Annotated[str, text_rule("body", MAX_BODY), text_schema(MAX_BODY)]
ReplyText = Annotated[str, text_rule("message", MAX_REPLY), text_schema(MAX_REPLY)]
# Reply ids end up in a CEL filter expression too: no quoting needed.
REPLY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
RUN_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ReplyId = Annotated[
    str,
    pattern_rule(REPLY_ID_PATTERN, lambda v: f"not a valid reply id: {v[:100]!r}"),
    pattern_schema(REPLY_ID_PATTERN, 100),
]
RunId = Annotated[
    str,
    pattern_rule(RUN_ID_PATTERN, lambda v: f"not a valid run id: {v[:100]!r}"),
    pattern_schema(RUN_ID_PATTERN, 36),
]


def new_ticket_id() -> str:
    """A fresh ticket id, for tickets submitted without one."""
    return f"T-{uuid.uuid4().hex[:12]}"


def new_reply_id() -> str:
    """A fresh reply id, for replies pushed without one."""
    return uuid.uuid4().hex


Category = Literal["bug", "billing", "account", "performance", "data", "how-to", "other"]
Priority = Literal["low", "medium", "high", "urgent"]


class Ticket(BaseModel):
    """A customer's ticket as submitted. Content is untrusted customer data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_id: TicketId
    customer_email: Email
    subject: Subject
    body: Body
    attachments: Annotated[list[Attachment], AfterValidator(check_attachment_set)] = Field(
        default_factory=list
    )


class TriageResult(BaseModel):
    category: Category
    priority: Priority
    reason: str


class CustomerReply(BaseModel):
    """The payload of a ``support:customer-reply`` event.

    ``reply_id`` names one reply: a waiting ticket takes each id once, so a
    reply is never lost to the one before it, nor counted twice (see
    ``workflows.support``). ``run_id`` addresses the ticket run that was live
    when the reply was sent, so a later run of the same ticket does not take
    it. Both are optional for other producers: without an id, a reply counts
    if it arrives after the previous reply woke the ticket.
    """

    model_config = ConfigDict(extra="ignore")

    ticket_id: TicketId
    message: ReplyText
    resolved: bool = Field(
        default=False,
        description="The customer marked the ticket solved; a plain reply continues the diagnosis.",
    )
    reply_id: ReplyId | None = None
    run_id: RunId | None = None
