"""What a human receives when a ticket is escalated: everything the agent knows."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agent.attachments import AttachmentRef
from agent.budget import Budget, Spent
from agent.tickets import TriageResult


class ScriptRecord(BaseModel):
    """One piece of code the agent ran, and what came of it."""

    round: int
    step: int
    purpose: str
    language: str
    code: str
    exit_code: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    duration_seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""
    error: str | None = Field(default=None, description="The sandbox could not run it.")


class EscalationPacket(BaseModel):
    ticket_id: str
    customer_email: str
    subject: str
    body: str
    attachments: list[AttachmentRef]
    triage: TriageResult
    reason: str
    hypotheses: list[str]
    scripts: list[ScriptRecord]
    replies_sent: list[str]
    customer_replies: list[str]
    planner: str
    spent: Spent
    budget: Budget
