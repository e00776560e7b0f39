import pytest
from pydantic import ValidationError

from agent.tickets import CustomerReply, Ticket

VALID = {"ticket_id": "T-1", "customer_email": "a@example.com", "subject": "s", "body": "b"}


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
        ("customer_email", "not-an-email"),
        ("subject", "   "),
        ("body", ""),
        ("body", "x" * 100_001),
    ],
)
def test_malformed_tickets_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        Ticket(**{**VALID, field: value})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Ticket(**VALID, priority="urgent")


def test_reply_defaults_to_resolving() -> None:
    assert CustomerReply(ticket_id="T-1", message="thanks").resolved is True
