"""Deterministic first-pass triage of a ticket.

Triage decides how urgent a ticket is before any model is involved, so it is
cheap, explainable and identical on every replay of the workflow.
"""

from __future__ import annotations

import re

from agent.tickets import Category, Priority, Ticket, TriageResult

# Ordered: the first category with a matching keyword wins.
_CATEGORY_KEYWORDS: tuple[tuple[Category, tuple[str, ...]], ...] = (
    ("billing", ("invoice", "charge", "charged", "refund", "billing", "payment", "subscription")),
    ("account", ("login", "log in", "password", "sso", "2fa", "locked out", "account")),
    ("performance", ("slow", "latency", "timeout", "timed out", "p95", "p99", "throughput")),
    ("data", ("csv", "json", "export", "import", "missing rows", "duplicate", "schema")),
    ("bug", ("error", "exception", "crash", "traceback", "500", "broken", "fails", "failing")),
    ("how-to", ("how do i", "how can i", "how to", "is it possible", "documentation")),
)

_URGENT = ("outage", "down for everyone", "production down", "data loss", "security", "breach")
_HIGH = ("production", "all users", "customers affected", "blocked", "cannot", "can't", "urgent")
_LOW = ("question", "wondering", "feature request", "nice to have", "how do i")


def _has(text: str, words: tuple[str, ...]) -> str | None:
    for word in words:
        if re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text):
            return word
    return None


def triage(ticket: Ticket) -> TriageResult:
    """Classify a ticket by category and priority from its subject and body."""
    text = f"{ticket.subject}\n{ticket.body}".lower()
    category: Category = "other"
    matched: str | None = None
    for candidate, words in _CATEGORY_KEYWORDS:
        matched = _has(text, words)
        if matched:
            category = candidate
            break

    priority: Priority = "medium"
    signal: str | None
    if signal := _has(text, _URGENT):
        priority = "urgent"
    elif signal := _has(text, _HIGH):
        priority = "high"
    elif signal := _has(text, _LOW):
        priority = "low"

    reasons = [f"category {category}" + (f" (mentions '{matched}')" if matched else "")]
    reasons.append(f"priority {priority}" + (f" (mentions '{signal}')" if signal else ""))
    return TriageResult(category=category, priority=priority, reason="; ".join(reasons))
