"""The diagnose loop: model turns and code runs until the round ends.

The durable task calls ``diagnose`` with its child tasks behind the small
``Children`` protocol; unit tests call it with ``workflows.local``'s
in-process children (the package's ``ScriptedLLM`` and ``FakeSandbox``), so
every branch (budgets, nudges, refused and failing code runs, a sandbox
that cannot run) is reachable without an engine.

Everything here must be deterministic given the children's outputs: the
durable task is replayed after a crash, and a replay must make exactly the
same calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.attachments import evidence_inputs
from agent.budget import Spent, code_runs_exhausted, code_runs_left, exhausted
from agent.llm import TurnRequest, TurnResult
from agent.loop import CodeCall, Decision, plan_turn
from agent.packet import EscalationPacket, ScriptRecord
from agent.prompts import SYSTEM_PROMPT, attachment_metadata, nudge_message, tool_result_block
from agent.tickets import TriageResult
from agent.tools import tool_definitions
from workflows.models import CodeRunRequest, CodeRunResult, TicketRun

# The least a code run is given when the sandbox-time budget is nearly spent.
MIN_CODE_TIMEOUT = 1.0


@dataclass(frozen=True)
class ChildFailure:
    """A child task that failed for good (retries exhausted, or not retryable)."""

    error: str


class Children(Protocol):
    """The loop's side effects. Implemented by Hatchet child runs, or in-process."""

    async def llm_turn(self, request: TurnRequest, *, turn: int) -> TurnResult | ChildFailure: ...

    async def run_code(
        self, requests: list[CodeRunRequest]
    ) -> list[CodeRunResult | ChildFailure]: ...


def error_text(exc: BaseException) -> str:
    """The first line of an error, bounded: what a transcript and a model can show."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


@dataclass
class TicketState:
    """Everything the orchestrator accumulates; rebuilt identically on replay."""

    run: TicketRun
    triage: TriageResult
    messages: list[dict[str, Any]]
    spent: Spent = field(default_factory=Spent)
    scripts: list[ScriptRecord] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    customer_replies: list[str] = field(default_factory=list)
    refused_replies: list[str] = field(default_factory=list)
    # Ids of the reply events taken (accepted or refused): never taken again.
    taken_replies: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    planner: str = ""
    rounds: int = 0

    def packet(self, reason: str) -> EscalationPacket:
        ticket = self.run.ticket
        return EscalationPacket(
            ticket_id=ticket.ticket_id,
            customer_email=ticket.customer_email,
            subject=ticket.subject,
            body=ticket.body,
            attachments=[a.ref for a in ticket.attachments],
            triage=self.triage,
            reason=reason,
            hypotheses=self.hypotheses,
            scripts=self.scripts,
            replies_sent=self.replies,
            customer_replies=self.customer_replies,
            planner=self.planner,
            spent=self.spent,
            budget=self.run.budget,
        )

    def turn_request(self) -> TurnRequest:
        ticket = self.run.ticket
        return TurnRequest(
            ticket_id=ticket.ticket_id,
            customer=ticket.customer_email,
            model=self.run.model,
            max_tokens=self.run.max_tokens,
            system=SYSTEM_PROMPT,
            tools=tool_definitions(),
            messages=self.messages,
            attachments=attachment_metadata(ticket),
        )

    def code_timeout(self, runs: int) -> float:
        """The timeout of each of a turn's ``runs`` code runs.

        Each may take the code timeout, but together no more sandbox time than
        the budget has left: they run in parallel, and the budget is checked
        only between turns (measured: 24 runs of 60 s spent 1,440 of 600 s in
        one turn). A budget of 0 is unlimited.
        """
        budget = self.run.budget.max_sandbox_seconds
        if budget <= 0:
            return self.run.code_timeout_seconds
        left = max(budget - self.spent.sandbox_seconds, 0.0)
        return max(min(self.run.code_timeout_seconds, left / max(runs, 1)), MIN_CODE_TIMEOUT)

    def code_requests(self, calls: list[CodeCall], root_run_id: str) -> list[CodeRunRequest]:
        ticket = self.run.ticket
        first_step = len(self.scripts) + 1
        timeout = self.code_timeout(len(calls))
        return [
            CodeRunRequest(
                ticket_id=ticket.ticket_id,
                customer=ticket.customer_email,
                round=self.rounds,
                step=first_step + i,
                purpose=c.call.purpose,
                language=c.call.language,
                code=c.call.code,
                evidence=evidence_inputs(ticket.attachments),
                root_run_id=root_run_id,
                timeout_seconds=timeout,
            )
            for i, c in enumerate(calls)
        ]


async def run_code_calls(
    state: TicketState, calls: list[CodeCall], children: Children, root_run_id: str
) -> list[dict[str, Any]]:
    """Run the turn's code calls in parallel; record them; return their tool results."""
    requests = state.code_requests(calls, root_run_id)
    outcomes = await children.run_code(requests)
    results = []
    for call, request, outcome in zip(calls, requests, outcomes, strict=True):
        record = ScriptRecord(
            round=request.round,
            step=request.step,
            purpose=request.purpose,
            language=request.language,
            code=request.code,
        )
        state.spent.code_runs += 1
        if isinstance(outcome, ChildFailure):
            record.error = outcome.error
            content, is_error = f"The sandbox could not run this code: {outcome.error}", True
        else:
            record = record.model_copy(
                update={
                    "exit_code": outcome.exit_code,
                    "timed_out": outcome.timed_out,
                    "oom_killed": outcome.oom_killed,
                    "duration_seconds": outcome.duration_seconds,
                    "stdout": outcome.stdout,
                    "stderr": outcome.stderr,
                }
            )
            state.spent.sandbox_seconds += outcome.duration_seconds
            content, is_error = outcome.summary, False
        state.scripts.append(record)
        results.append(tool_result_block(call.tool_use_id, content, is_error=is_error))
    return results


async def diagnose(
    state: TicketState, children: Children, root_run_id: str
) -> tuple[Decision, list[dict[str, Any]]]:
    """Model turns and code runs until a finishing tool or a budget ends the round.

    Returns the decision and the tool results that close the last turn (the
    Messages API needs a result for every tool call if the conversation
    continues after the customer replies).
    """
    while True:
        reason = exhausted(state.run.budget, state.spent)
        if reason:
            return Decision.escalate(reason), []
        turn = await children.llm_turn(state.turn_request(), turn=state.spent.steps + 1)
        if isinstance(turn, ChildFailure):
            return Decision.escalate(f"the model call failed: {turn.error}"), []
        state.spent.steps += 1
        state.spent.tokens += turn.usage.total
        state.planner = turn.planner
        state.messages.append({"role": "assistant", "content": turn.content})

        plan = plan_turn(turn, code_runs_left(state.run.budget, state.spent))
        if plan.decision is not None:
            state.hypotheses.extend(plan.decision.hypotheses)
            return plan.decision, plan.closing_results
        if plan.code_budget_refused:
            return Decision.escalate(code_runs_exhausted(state.run.budget, state.spent)), []
        if plan.asked_for_nothing:
            state.messages.append(nudge_message())
            continue
        results = plan.immediate_results
        if plan.code_calls:
            results = results + await run_code_calls(state, plan.code_calls, children, root_run_id)
        state.messages.append({"role": "user", "content": results})
