"""Inputs and outputs of the workflow's tasks: what the dashboard shows for each run."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agent.attachments import AttachmentRef
from agent.budget import Budget, Spent
from agent.packet import EscalationPacket
from agent.tickets import Category, Priority, Ticket


class TicketRun(BaseModel):
    """Input of one ticket run: the ticket plus the policy it runs under.

    The policy travels with the run instead of being read from the worker's
    environment: after a crash the durable task is replayed, and a replay
    must make exactly the same calls as the first run.
    """

    ticket: Ticket
    reply_timeout_seconds: float = Field(gt=0)
    reply_lookback_seconds: float = Field(default=300, ge=0)
    max_rounds: int = Field(default=3, ge=1)
    model: str = "claude-sonnet-5-5"
    max_tokens: int = Field(default=4096, ge=256)
    code_timeout_seconds: float = Field(default=60, gt=0)
    budget: Budget = Field(default_factory=Budget)


class CodeRunRequest(BaseModel):
    """Input of a ``run-code`` child: the script a reviewer reads in the dashboard."""

    ticket_id: str
    customer: str
    round: int
    step: int
    purpose: str
    language: Literal["python", "bash"]
    code: str
    attachments: list[AttachmentRef]
    root_run_id: str = Field(description="The ticket run that holds the attachments' content.")
    timeout_seconds: float


class CodeRunResult(BaseModel):
    """Output of a ``run-code`` child: what the script did."""

    purpose: str
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    duration_seconds: float
    stdout: str
    stderr: str
    output_files: list[str] = Field(default_factory=list)
    summary: str = Field(description="What the model is shown as the tool result.")
    error: str | None = Field(default=None, description="Set when the sandbox could not run it.")


class ReplyRequest(BaseModel):
    ticket_id: str
    customer_email: str
    round: int
    message: str
    findings: list[str]
    closes_ticket: bool


class ReplySent(BaseModel):
    ticket_id: str
    round: int
    message: str


class EscalationRecord(BaseModel):
    ticket_id: str
    reason: str
    summary: str


class TicketOutcome(BaseModel):
    """Output of the ticket run: a superset of the Hatchet support-agent cookbook's contract."""

    ticket_id: str
    status: Literal["resolved", "escalated"]
    triage_category: Category
    triage_priority: Priority
    initial_reply: str = Field(description="The first reply sent ('' if escalated before one).")
    replies: list[str] = Field(default_factory=list)
    customer_replies: list[str] = Field(default_factory=list)
    customer_reply: str | None = Field(default=None, description="The last customer reply.")
    escalation_reason: str | None = None
    escalation: EscalationPacket | None = None
    rounds: int = 0
    scripts_run: int = 0
    planner: str = ""
    spent: Spent = Field(default_factory=Spent)
