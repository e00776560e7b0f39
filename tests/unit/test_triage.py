import pytest

from agent.replies import acknowledgement
from agent.tickets import Ticket
from agent.triage import triage


def _ticket(subject: str, body: str) -> Ticket:
    return Ticket(ticket_id="T-1", customer_email="a@example.com", subject=subject, body=body)


@pytest.mark.parametrize(
    ("subject", "body", "category", "priority"),
    [
        ("Refund please", "I was charged twice for my subscription.", "billing", "medium"),
        (
            "Locked out",
            "Production is blocked: nobody can log in since the SSO change.",
            "account",
            "high",
        ),
        ("Dashboard slow", "p95 latency went from 200ms to 4s.", "performance", "medium"),
        ("Export", "The CSV export has missing rows.", "data", "medium"),
        ("Crash", "We get a traceback on save.", "bug", "medium"),
        ("Question", "How do I rotate an API key?", "how-to", "low"),
        ("Outage", "Production down for everyone after deploy, error 500.", "bug", "urgent"),
        ("Hello", "Just saying thanks.", "other", "medium"),
    ],
)
def test_triage_classifies_by_keywords(
    subject: str, body: str, category: str, priority: str
) -> None:
    result = triage(_ticket(subject, body))
    assert (result.category, result.priority) == (category, priority)
    assert category in result.reason


def test_keywords_match_whole_words_only() -> None:
    # "accountant" must not look like an account problem, nor "5000" like an HTTP 500.
    result = triage(_ticket("Note", "Our accountant sent 5000 thanks."))
    assert result.category == "other"


def test_acknowledgement_names_category_priority_and_article() -> None:
    ticket = _ticket("Locked out", "cannot log in")
    text = acknowledgement(ticket, triage(ticket))
    assert "an account issue with high priority" in text
    assert '"Locked out"' in text
