"""What a support ticket is, as the workflow receives it and reports on it."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from agent.attachments import Attachment, check_attachment_set

# Ticket ids end up in event scopes and in a CEL filter expression, so they are
# restricted to characters that need no quoting anywhere.
TICKET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


TicketId = Annotated[str, StringConstraints(pattern=TICKET_ID_PATTERN)]
Email = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_check_email)]

Category = Literal["bug", "billing", "account", "performance", "data", "how-to", "other"]
Priority = Literal["low", "medium", "high", "urgent"]


class Ticket(BaseModel):
    """A customer's ticket as submitted. Content is untrusted customer data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_id: TicketId
    customer_email: Email
    subject: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000)]
    attachments: Annotated[list[Attachment], AfterValidator(check_attachment_set)] = Field(
        default_factory=list
    )


class TriageResult(BaseModel):
    category: Category
    priority: Priority
    reason: str


class CustomerReply(BaseModel):
    """The payload of a ``support:customer-reply`` event."""

    model_config = ConfigDict(extra="ignore")

    ticket_id: TicketId
    message: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    resolved: bool = Field(
        default=False,
        description="The customer marked the ticket solved; a plain reply continues the diagnosis.",
    )
