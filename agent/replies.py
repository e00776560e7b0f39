"""Customer-facing text the agent sends without a model: acknowledgements and hand-offs."""

from __future__ import annotations

from agent.tickets import Ticket, TriageResult

_RESPONSE_TIME = {
    "urgent": "within the hour",
    "high": "today",
    "medium": "within one business day",
    "low": "within two business days",
}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def acknowledgement(ticket: Ticket, triage: TriageResult) -> str:
    """The first reply: what we understood and what happens next."""
    kind = f"{_article(triage.category)} {triage.category}"
    return (
        f'Hi,\n\nThanks for reaching out about "{ticket.subject}". We have filed this as '
        f"{kind} issue with {triage.priority} priority and will follow up "
        f"{_RESPONSE_TIME[triage.priority]}.\n\nIf this solves it or you have more details, "
        f"just reply to this message.\n\nSupport team"
    )
