from typing import TypedDict

import pytest
from pydantic import ValidationError

from agent.tickets import CustomerReply, Ticket


class _Fields(TypedDict):
    ticket_id: str
    customer_email: str
    subject: str
    body: str


VALID: _Fields = {
    "ticket_id": "T-1",
    "customer_email": "a@example.com",
    "subject": "s",
    "body": "b",
}


def test_valid_ticket_round_trips() -> None:
    ticket = Ticket(**VALID)
    assert Ticket.model_validate_json(ticket.model_dump_json()) == ticket


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ticket_id", "T-1' || true || '"),  # would break out of the CEL filter
        ("ticket_id", "../etc"),
        ("ticket_id", ""),
        ("ticket_id", "x" * 65),
        ("ticket_id", "T-1\n"),  # "$" matches before a final newline; a CEL literal breaks
        ("customer_email", "not-an-email"),
        ("subject", "   "),
        ("body", ""),
        ("body", "x" * 100_001),
    ],
)
def test_malformed_tickets_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        # Deliberately malformed values: a dict with a variable key, which mypy cannot type.
        Ticket(**{**VALID, field: value})  # type: ignore[arg-type]


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Ticket(**VALID, priority="urgent")  # type: ignore[call-arg]  # deliberately unknown


def test_a_plain_reply_continues_the_conversation() -> None:
    assert CustomerReply(ticket_id="T-1", message="thanks").resolved is False


def test_attachments_are_references_with_safe_names() -> None:
    from agent.attachments import Attachment
    from tests.conftest import attachment

    stored = attachment("app.log", b"hello")
    assert stored.sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert "content_b64" not in stored.model_dump()  # no content ever travels in a ticket
    for hostile in ("../etc/passwd", "/abs", ".hidden", "a/b", "a b", ""):
        with pytest.raises(ValidationError):
            Attachment.model_validate({**stored.model_dump(), "name": hostile})
    with pytest.raises(ValidationError, match="duplicate"):
        Ticket(**VALID, attachments=[stored, stored])


def test_reply_ids_are_safe_for_a_filter_and_optional() -> None:
    assert CustomerReply(ticket_id="T-1", message="hi").reply_id is None
    assert CustomerReply(ticket_id="T-1", message="hi", reply_id="r-1").reply_id == "r-1"
    for bad in ("r' || '", "r-1\n", "", "-r"):
        with pytest.raises(ValidationError, match="reply id"):
            CustomerReply(ticket_id="T-1", message="hi", reply_id=bad)
    with pytest.raises(ValidationError, match="run id"):
        CustomerReply(ticket_id="T-1", message="hi", run_id="not-a-run")
