"""The durable support workflow.

triage -> diagnose -> reply -> wait for the customer or a timeout -> on a
reply, diagnose again (up to ``max_rounds``) or resolve -> on timeout, escalate.

The durable task only orchestrates: every model turn and every code run is a
child task. State (transcript, budget usage, scripts run) is rebuilt from
child outputs, so when the engine replays the task after a worker crash,
finished children return their recorded output and nothing is repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hatchet_sdk import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    DurableContext,
    Hatchet,
    SleepCondition,
    UserEventCondition,
    or_,
)
from hatchet_sdk.exceptions import FailedTaskRunExceptionGroup, TaskRunError
from hatchet_sdk.runnables.eviction import EvictionPolicy
from hatchet_sdk.runnables.workflow import Standalone

from agent.budget import Spent, code_runs_exhausted, code_runs_left, exhausted
from agent.llm import TurnRequest, TurnResult
from agent.loop import Decision, plan_turn
from agent.packet import EscalationPacket, ScriptRecord
from agent.prompts import (
    SYSTEM_PROMPT,
    attachment_metadata,
    customer_reply_message,
    initial_messages,
    nudge_message,
    tool_result_block,
)
from agent.tickets import CustomerReply, TriageResult
from agent.tools import tool_definitions
from workflows.deps import Dependencies
from workflows.models import CodeRunRequest, CodeRunResult, ReplyRequest, TicketOutcome, TicketRun
from workflows.settings import Settings
from workflows.tasks import ChildTasks, build_child_tasks

REPLY_EVENT = "support:customer-reply"
# How a child task's failure reaches the durable parent. Anything else (a
# non-determinism error, a cancellation) must propagate, never become a
# ticket decision.
CHILD_FAILURES = (TaskRunError, FailedTaskRunExceptionGroup)


def reply_filter(ticket_id: str) -> str:
    """CEL filter on the event payload, on top of the scope.

    Scoped waits could be woken by another scope's event on some engine
    versions; the ticket id is restricted to [A-Za-z0-9._-], so it needs no
    escaping inside the single-quoted CEL string.
    """
    return f"input.ticket_id == '{ticket_id}'"


def parse_wait_result(result: dict[str, Any]) -> CustomerReply | None:
    """The customer's reply if the event won the race, None if the timeout did."""
    fired: dict[str, list[dict[str, Any]]] = result.get("CREATE", {})
    payloads = fired.get(REPLY_EVENT)
    if not payloads:
        return None
    return CustomerReply.model_validate(payloads[0])


def _error_text(exc: BaseException) -> str:
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


@dataclass(frozen=True)
class SupportWorkflow:
    """The registered tasks; the same definitions serve workers and clients."""

    ticket: Standalone[TicketRun, TicketOutcome]
    children: ChildTasks
    # Names known to exist on the engine: checked once per process, not per submission.
    _known: set[str] = field(default_factory=set, compare=False, repr=False)

    def all(self) -> list[Any]:
        return [self.ticket, *self.children.all()]

    async def register_missing(self, hatchet: Hatchet) -> None:
        """Register the definitions the engine does not know yet.

        The engine silently drops a run of a workflow it does not know, so a
        client registers before its first submission: a ticket then queues
        until a worker is available. Definitions that exist are left alone,
        because task settings (retries, timeouts, limits) are the workers'
        to set: a worker registers its own definitions when it starts.
        """
        for runnable in self.all():
            if runnable.name in self._known:
                continue
            # The name filter matches substrings (other namespaces too): compare exactly.
            listed = await hatchet.workflows.aio_list(workflow_name=runnable.name, limit=200)
            if not any(w.name == runnable.name for w in listed.rows or []):
                # The SDK exposes registration only on its internal client.
                await hatchet._client.admin.aio_put_workflow(runnable.to_proto())
            self._known.add(runnable.name)


def build_support_workflow(
    hatchet: Hatchet, settings: Settings, deps: Dependencies | None = None
) -> SupportWorkflow:
    """Declare the workflow on a client. ``deps`` is needed only where tasks execute."""
    children = build_child_tasks(hatchet, settings, deps)

    async def run_code_calls(
        state: TicketState, plan_calls: list[Any], root_run_id: str
    ) -> list[dict[str, Any]]:
        """Run the turn's code calls as parallel children; return their tool results."""
        ticket = state.run.ticket
        first_step = len(state.scripts) + 1
        requests = [
            CodeRunRequest(
                ticket_id=ticket.ticket_id,
                customer=ticket.customer_email,
                round=state.rounds,
                step=first_step + i,
                purpose=c.call.purpose,
                language=c.call.language,
                code=c.call.code,
                attachments=[a.ref for a in ticket.attachments],
                root_run_id=root_run_id,
                timeout_seconds=state.run.code_timeout_seconds,
            )
            for i, c in enumerate(plan_calls)
        ]
        outcomes = await children.run_code.aio_run_many(
            [
                children.run_code.create_bulk_run_item(
                    input=r,
                    # Shown and filterable in the dashboard's run list, so a
                    # ticket's scripts can be told apart without opening each.
                    additional_metadata={"step": str(r.step), "purpose": r.purpose[:120]},
                )
                for r in requests
            ],
            return_exceptions=True,
        )
        results = []
        for code_call, request, outcome in zip(plan_calls, requests, outcomes, strict=True):
            record = ScriptRecord(
                round=request.round,
                step=request.step,
                purpose=request.purpose,
                language=request.language,
                code=request.code,
            )
            state.spent.code_runs += 1
            if isinstance(outcome, BaseException) and not isinstance(outcome, CHILD_FAILURES):
                raise outcome  # engine or replay errors are not the code's failures
            if isinstance(outcome, BaseException):
                record.error = _error_text(outcome)
                content, is_error = f"The sandbox could not run this code: {record.error}", True
            else:
                result = CodeRunResult.model_validate(outcome)
                record = record.model_copy(
                    update={
                        "exit_code": result.exit_code,
                        "timed_out": result.timed_out,
                        "oom_killed": result.oom_killed,
                        "duration_seconds": result.duration_seconds,
                        "stdout": result.stdout,
                        "stderr": result.stderr,
                    }
                )
                state.spent.sandbox_seconds += result.duration_seconds
                content, is_error = result.summary, False
            state.scripts.append(record)
            results.append(tool_result_block(code_call.tool_use_id, content, is_error=is_error))
        return results

    async def diagnose(state: TicketState, root_run_id: str) -> tuple[Decision, list[Any]]:
        """Model turns and code runs until a finishing tool or a budget ends the round."""
        ticket = state.run.ticket
        while True:
            reason = exhausted(state.run.budget, state.spent)
            if reason:
                return Decision.escalate(reason), []
            try:
                turn: TurnResult = await children.llm_turn.aio_run(
                    TurnRequest(
                        ticket_id=ticket.ticket_id,
                        customer=ticket.customer_email,
                        model=state.run.model,
                        max_tokens=state.run.max_tokens,
                        system=SYSTEM_PROMPT,
                        tools=tool_definitions(),
                        messages=state.messages,
                        attachments=attachment_metadata(ticket),
                    ),
                    additional_metadata={"turn": str(state.spent.steps + 1)},
                )
            except CHILD_FAILURES as exc:  # retries exhausted, or not retryable
                return Decision.escalate(f"the model call failed: {_error_text(exc)}"), []
            turn = TurnResult.model_validate(turn)
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
                results = results + await run_code_calls(state, plan.code_calls, root_run_id)
            state.messages.append({"role": "user", "content": results})

    @hatchet.durable_task(
        name="support-ticket",
        input_validator=TicketRun,
        execution_timeout=settings.ticket_execution_timeout,
        # A long wait is evicted from the worker (freeing its slot) and restored
        # by the engine when the reply or the timeout arrives.
        eviction_policy=EvictionPolicy(ttl=timedelta(seconds=settings.eviction_ttl_seconds)),
        # A new run for the same ticket cancels the stale one.
        concurrency=[
            ConcurrencyExpression(
                expression="input.ticket.ticket_id",
                max_runs=1,
                limit_strategy=ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS,
            )
        ],
    )
    async def support_ticket(run: TicketRun, ctx: DurableContext) -> TicketOutcome:
        ticket = run.ticket
        triaged = TriageResult.model_validate(await children.triage.aio_run(ticket))
        state = TicketState(run=run, triage=triaged, messages=initial_messages(ticket, triaged))
        # aio_now is recorded in the durable log: identical on every replay.
        since = await ctx.aio_now() - timedelta(seconds=run.reply_lookback_seconds)

        async def finish(status: str, reason: str | None = None) -> TicketOutcome:
            packet = None
            if status == "escalated":
                packet = state.packet(reason or "escalated")
                await children.escalate.aio_run(packet)
            return TicketOutcome(
                ticket_id=ticket.ticket_id,
                status="escalated" if status == "escalated" else "resolved",
                triage_category=triaged.category,
                triage_priority=triaged.priority,
                initial_reply=state.replies[0] if state.replies else "",
                replies=state.replies,
                customer_replies=state.customer_replies,
                customer_reply=state.customer_replies[-1] if state.customer_replies else None,
                escalation_reason=reason,
                escalation=packet,
                rounds=state.rounds,
                scripts_run=len(state.scripts),
                planner=state.planner,
                spent=state.spent,
            )

        while True:
            state.rounds += 1
            decision, closing = await diagnose(state, ctx.workflow_run_id)
            if decision.kind == "escalate":
                return await finish("escalated", decision.reason)
            await children.send_reply.aio_run(
                ReplyRequest(
                    ticket_id=ticket.ticket_id,
                    customer_email=ticket.customer_email,
                    round=state.rounds,
                    message=decision.message,
                    findings=decision.findings,
                    closes_ticket=decision.resolved,
                )
            )
            state.replies.append(decision.message)
            state.hypotheses.extend(decision.findings)
            if decision.resolved:
                return await finish("resolved")

            result = await ctx.aio_wait_for(
                f"customer-reply-{state.rounds}",
                or_(
                    SleepCondition(timedelta(seconds=run.reply_timeout_seconds)),
                    UserEventCondition(
                        event_key=REPLY_EVENT,
                        scope=ticket.ticket_id,
                        expression=reply_filter(ticket.ticket_id),
                        consider_events_since=since,
                    ),
                ),
                label=f"waiting for the customer's reply (round {state.rounds})",
            )
            reply = parse_wait_result(result)
            if reply is None:
                return await finish(
                    "escalated",
                    f"no reply from the customer within {run.reply_timeout_seconds:g} s",
                )
            # The next wait's lookback starts here, so it cannot match this reply again.
            since = await ctx.aio_now()
            state.customer_replies.append(reply.message)
            if reply.resolved:
                return await finish("resolved")
            if state.rounds >= run.max_rounds:
                return await finish(
                    "escalated",
                    f"the customer still needs help after {state.rounds} rounds",
                )
            follow_up = customer_reply_message(ticket.ticket_id, reply.message, state.rounds + 1)
            state.messages.append({"role": "user", "content": [*closing, *follow_up["content"]]})

    return SupportWorkflow(ticket=support_ticket, children=children)
