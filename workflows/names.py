"""Names shared by the workflow, its clients and its readers, defined once.

A task's name is how the engine, the dashboard and the transcript reader
recognise it; an event key and a label are contracts with other processes.
Spelling any of them twice is how a rename silently breaks a reader.
"""

from __future__ import annotations

from enum import StrEnum


class TaskName(StrEnum):
    """The registered tasks (without the client's namespace prefix)."""

    TICKET = "support-ticket"
    TRIAGE = "triage-ticket"
    LLM_TURN = "llm-turn"
    RUN_CODE = "run-code"
    RECEIVE_REPLY = "receive-reply"
    SEND_REPLY = "send-reply"
    ESCALATE = "escalate-ticket"
    RESOLVE = "resolve-ticket"


# The customer's reply, pushed with the ticket id as its scope.
REPLY_EVENT = "support:customer-reply"
# Shared by model calls from every worker (the key is not namespaced).
LLM_RATE_LIMIT_KEY = "support-agent:llm-requests"
# Code runs go only to workers that carry this label.
SANDBOX_LABEL = "sandbox"
SANDBOX_LABEL_VALUE = "docker"
