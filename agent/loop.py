"""The agent's decisions between model turns, as pure functions.

The durable workflow calls these to interpret each turn: which code runs to
start, which tool calls to refuse, and whether the round is over. Keeping
them free of I/O makes the workflow's replay deterministic and lets unit
tests cover every branch without an engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.llm import TurnResult
from agent.prompts import tool_result_block
from agent.tools import (
    EscalateToHuman,
    ReplyToCustomer,
    RunCode,
    ToolInputError,
    parse_tool_call,
)


class Decision(BaseModel):
    """How a round of diagnosis ended."""

    kind: Literal["reply", "escalate"]
    message: str = ""
    findings: list[str] = Field(default_factory=list)
    resolved: bool = False
    reason: str = ""
    hypotheses: list[str] = Field(default_factory=list)

    @classmethod
    def escalate(cls, reason: str, hypotheses: list[str] | None = None) -> Decision:
        return cls(kind="escalate", reason=reason, hypotheses=hypotheses or [])


class CodeCall(BaseModel):
    tool_use_id: str
    call: RunCode


class TurnPlan(BaseModel):
    """What to do after one model turn."""

    code_calls: list[CodeCall] = Field(default_factory=list)
    # Tool results that need no execution: invalid calls and refused runs.
    immediate_results: list[dict[str, Any]] = Field(default_factory=list)
    decision: Decision | None = None
    # tool_result blocks that close the turn if the conversation continues
    # later (the Messages API requires a result for every tool_use).
    closing_results: list[dict[str, Any]] = Field(default_factory=list)
    code_budget_refused: bool = False

    @property
    def asked_for_nothing(self) -> bool:
        return not (self.code_calls or self.immediate_results or self.decision)


def plan_turn(turn: TurnResult, code_runs_left: int) -> TurnPlan:
    """Validate the turn's tool calls and decide what happens next."""
    plan = TurnPlan()
    refused_for_budget = 0
    for call in turn.tool_calls:
        try:
            parsed = parse_tool_call(call.name, call.input)
        except ToolInputError as exc:
            plan.immediate_results.append(tool_result_block(call.id, str(exc), is_error=True))
            continue
        if plan.decision is not None:
            plan.closing_results.append(
                tool_result_block(call.id, "Not executed: the round had already ended.")
            )
            continue
        if isinstance(parsed, ReplyToCustomer):
            plan.decision = Decision(
                kind="reply",
                message=parsed.message,
                findings=parsed.findings,
                resolved=parsed.resolved,
            )
            plan.closing_results.append(tool_result_block(call.id, "Reply sent to the customer."))
        elif isinstance(parsed, EscalateToHuman):
            plan.decision = Decision.escalate(parsed.reason, parsed.hypotheses)
            plan.closing_results.append(tool_result_block(call.id, "Escalated to a human."))
        elif len(plan.code_calls) < code_runs_left:
            plan.code_calls.append(CodeCall(tool_use_id=call.id, call=parsed))
        else:
            refused_for_budget += 1
            plan.immediate_results.append(
                tool_result_block(
                    call.id,
                    "Refused: the ticket's code-run budget is used up. Reply or escalate.",
                    is_error=True,
                )
            )
    if plan.decision is not None:
        # Code requested in the same turn as a finishing tool is not run.
        for code in plan.code_calls:
            plan.closing_results.append(
                tool_result_block(code.tool_use_id, "Not executed: the round had ended.")
            )
        plan.closing_results.extend(plan.immediate_results)
        plan.code_calls, plan.immediate_results = [], []
    plan.code_budget_refused = refused_for_budget > 0 and not plan.code_calls
    return plan
