"""The durable support workflow: a flow chart over child tasks.

triage -> diagnose -> reply -> wait for the customer or a timeout -> on a
reply, diagnose again (up to ``max_rounds``) or resolve -> on timeout, escalate.

The durable task only orchestrates: every model turn, code run, reply
received and reply sent is a child task. State (transcript, budget usage,
scripts run) is rebuilt from child outputs, so when the engine replays the
task after a worker crash, finished children return their recorded output
and nothing is repeated. The loop itself lives in ``workflows.diagnose``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

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

from agent.llm import TurnRequest, TurnResult
from agent.prompts import customer_reply_message, initial_messages
from agent.tickets import REPLY_ID_PATTERN, TriageResult
from workflows.deps import Dependencies
from workflows.diagnose import ChildFailure, TicketState, diagnose, error_text
from workflows.models import (
    CodeRunRequest,
    CodeRunResult,
    EscalationRequest,
    ReceivedReply,
    ReplyEvent,
    ReplyRequest,
    ResolutionRequest,
    TicketOutcome,
    TicketRun,
    TicketStatus,
)
from workflows.names import REPLY_EVENT, TaskName
from workflows.settings import WAIT_SLICE_SECONDS, Settings
from workflows.tasks import ChildTasks, build_child_tasks

Closing = Literal[TicketStatus.RESOLVED, TicketStatus.ESCALATED]
# A ticket that refuses this many reply events escalates: their producer is broken.
MAX_REFUSED_REPLIES = 50
# How a child task's failure reaches the durable parent. Anything else (a
# non-determinism error, a cancellation) must propagate, never become a
# ticket decision.
CHILD_FAILURES = (TaskRunError, FailedTaskRunExceptionGroup)


def reply_filter(ticket_id: str) -> str:
    """CEL filter on the event payload, on top of the scope.

    Scoped waits could be woken by another scope's event on some engine
    versions, so a payload that names a ticket must name this one; a payload
    without a ticket id (the scope alone names the ticket) is let through.
    The ticket id is restricted to [A-Za-z0-9._-], so it needs no escaping
    inside the single-quoted CEL string.
    """
    return f"!has(input.ticket_id) || input.ticket_id == '{ticket_id}'"


def reply_filter_by_id(ticket_id: str, taken: list[str]) -> str:
    """``reply_filter``, leaving out the replies this run has taken already.

    The wait looks back over the whole run (its lookback never moves for
    replies with an id), so a reply is never lost because another woke the
    ticket just before it; the ids taken keep one from being taken twice,
    whatever the clocks say. A payload without a reply id passes (other
    producers; see ``wait_for_customer``). Ids are restricted like ticket ids;
    checked again here, since they go into a CEL string literal.
    """
    for value in taken:
        if not re.fullmatch(REPLY_ID_PATTERN, value):
            raise ValueError(f"not an id that can go into a CEL filter: {value[:100]!r}")
    ids = ", ".join(f"'{i}'" for i in taken)
    return f"({reply_filter(ticket_id)}) && (!has(input.reply_id) || !(input.reply_id in [{ids}]))"


def wait_slice(left_seconds: float) -> int:
    """How long the next sleep of a wait with ``left_seconds`` to go is, in whole seconds.

    At most ``WAIT_SLICE_SECONDS``: the engine times out a waiting task from
    its last wake-up, so a longer wait goes in slices. Rounded up, since the
    engine takes whole seconds (the SDK truncates): never shorter than asked.
    """
    return math.ceil(min(left_seconds, WAIT_SLICE_SECONDS))


def wait_result_payload(result: dict[str, Any]) -> tuple[bool, Any]:
    """(True, the event's payload) if the reply event won the race; (False, None) on timeout."""
    fired: dict[str, list[Any]] = result.get("CREATE", {})
    payloads = fired.get(REPLY_EVENT)
    if not payloads:
        return False, None
    return True, payloads[0]


class HatchetChildren:
    """``workflows.diagnose.Children`` as child runs of the durable task."""

    def __init__(self, tasks: ChildTasks) -> None:
        self._tasks = tasks

    async def llm_turn(self, request: TurnRequest, *, turn: int) -> TurnResult | ChildFailure:
        try:
            result = await self._tasks.llm_turn.aio_run(
                request, additional_metadata={"turn": str(turn)}
            )
        except CHILD_FAILURES as exc:  # retries exhausted, or not retryable
            return ChildFailure(error_text(exc))
        return TurnResult.model_validate(result)

    async def run_code(self, requests: list[CodeRunRequest]) -> list[CodeRunResult | ChildFailure]:
        run_code = self._tasks.run_code
        outcomes = await run_code.aio_run_many(
            [
                run_code.create_bulk_run_item(
                    input=r,
                    # Shown and filterable in the dashboard's run list, so a
                    # ticket's scripts can be told apart without opening each.
                    additional_metadata={"step": str(r.step), "purpose": r.purpose[:120]},
                )
                for r in requests
            ],
            return_exceptions=True,
        )
        results: list[CodeRunResult | ChildFailure] = []
        for outcome in outcomes:
            if isinstance(outcome, CHILD_FAILURES):
                results.append(ChildFailure(error_text(outcome)))
            elif isinstance(outcome, BaseException):
                raise outcome  # engine or replay errors are not the code's failures
            else:
                results.append(CodeRunResult.model_validate(outcome))
        return results


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
    calls = HatchetChildren(children)

    @hatchet.durable_task(
        name=TaskName.TICKET,
        input_validator=TicketRun,
        execution_timeout=settings.ticket_execution_timeout,
        # Queued (every durable slot taken, no worker up) as long as it may run.
        schedule_timeout=settings.ticket_execution_timeout,
        # A lost connection to the engine fails a durable step in flight (the SDK
        # fails every unacknowledged request when its stream drops): a retry
        # replays the durable log, so nothing finished runs again.
        retries=settings.ticket_retries,
        backoff_factor=2,
        backoff_max_seconds=60,
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
        triaged = run.triage or TriageResult.model_validate(await children.triage.aio_run(ticket))
        state = TicketState(run=run, triage=triaged, messages=initial_messages(ticket, triaged))
        # aio_now is recorded in the durable log: identical on every replay.
        since = await ctx.aio_now() - timedelta(seconds=run.reply_lookback_seconds)

        async def finish(
            status: Closing, reason: str | None = None, resolved_by: str = "agent"
        ) -> TicketOutcome:
            packet, delivery_error = None, None
            closing_at = await ctx.aio_now()
            try:
                if status is TicketStatus.ESCALATED:
                    packet = state.packet(reason or "escalated")
                    await children.escalate.aio_run(
                        EscalationRequest(
                            run_id=ctx.workflow_run_id, timestamp=closing_at, packet=packet
                        )
                    )
                else:
                    await children.resolve.aio_run(
                        ResolutionRequest(
                            ticket_id=ticket.ticket_id,
                            run_id=ctx.workflow_run_id,
                            timestamp=closing_at,
                            round=state.rounds,
                            resolved_by="customer" if resolved_by == "customer" else "agent",
                            customer_reply=state.customer_replies[-1]
                            if state.customer_replies
                            else None,
                        )
                    )
            except CHILD_FAILURES as exc:  # the ticket is closed either way: say so
                delivery_error = error_text(exc)
            return TicketOutcome(
                ticket_id=ticket.ticket_id,
                status=status,
                triage_category=triaged.category,
                triage_priority=triaged.priority,
                initial_reply=state.replies[0] if state.replies else "",
                replies=state.replies,
                customer_replies=state.customer_replies,
                customer_reply=state.customer_replies[-1] if state.customer_replies else None,
                refused_replies=state.refused_replies,
                escalation_reason=reason,
                escalation=packet,
                delivery_error=delivery_error,
                rounds=state.rounds,
                scripts_run=len(state.scripts),
                planner=state.planner,
                spent=state.spent,
            )

        async def wait_for_customer(since: datetime) -> tuple[ReceivedReply | str, datetime]:
            """The customer's valid reply (or why none came), and where the next wait looks from.

            A malformed reply event is recorded by ``receive-reply`` and the
            ticket keeps waiting for a valid one within the same deadline.

            Replies with an id (every reply our API and client push) are taken
            once each by id, and the lookback stays where it is: replies sent
            close together, or while no worker ran, are each taken in turn. A
            payload without an id (another producer) cannot be told apart from
            itself, so the next wait looks only at events after the moment this
            one woke. Runs submitted before replies had ids keep that rule for
            every reply (``TicketRun.replies_by_id``): their recorded waits replay.
            """
            by_id = run.replies_by_id
            started = await ctx.aio_now()
            left = run.reply_timeout_seconds
            for attempt in itertools.count(1):
                expression = (
                    reply_filter_by_id(ticket.ticket_id, state.taken_replies)
                    if by_id
                    else reply_filter(ticket.ticket_id)
                )
                result = await ctx.aio_wait_for(
                    f"customer-reply-{state.rounds}-{attempt}",
                    or_(
                        SleepCondition(timedelta(seconds=wait_slice(left))),
                        UserEventCondition(
                            event_key=REPLY_EVENT,
                            scope=ticket.ticket_id,
                            expression=expression,
                            consider_events_since=since,
                        ),
                    ),
                    label=f"waiting for the customer's reply (round {state.rounds})",
                )
                woke = await ctx.aio_now()
                fired, payload = wait_result_payload(result)
                if not fired:
                    left = run.reply_timeout_seconds - (woke - started).total_seconds()
                    if left < 1:  # the engine's sleeps are whole seconds
                        return no_reply_within(), woke
                    continue  # one slice of a longer wait: events since ``since`` still count
                received = ReceivedReply.model_validate(
                    await children.receive_reply.aio_run(
                        ReplyEvent(ticket_id=ticket.ticket_id, round=state.rounds, payload=payload)
                    )
                )
                if by_id and received.reply_id is not None:
                    state.taken_replies.append(received.reply_id)
                else:
                    since = woke
                if received.accepted:
                    return received, since
                state.refused_replies.append(received.error or "refused")
                if by_id and len(state.refused_replies) >= MAX_REFUSED_REPLIES:
                    # A broken producer; each refused id also lengthens the next filter.
                    return f"{MAX_REFUSED_REPLIES} malformed reply events were refused", since
                left = run.reply_timeout_seconds - (await ctx.aio_now() - started).total_seconds()
                if left <= 0:
                    return no_reply_within(), since
            raise AssertionError("unreachable")

        def no_reply_within() -> str:
            return f"no reply from the customer within {run.reply_timeout_seconds:g} s"

        while True:
            state.rounds += 1
            decision, closing = await diagnose(state, calls, ctx.workflow_run_id)
            if decision.kind == "escalate":
                return await finish(TicketStatus.ESCALATED, decision.reason)
            try:
                await children.send_reply.aio_run(
                    ReplyRequest(
                        ticket_id=ticket.ticket_id,
                        customer_email=ticket.customer_email,
                        round=state.rounds,
                        message=decision.message,
                        findings=decision.findings,
                        closes_ticket=decision.resolved,
                        run_id=ctx.workflow_run_id,
                        timestamp=await ctx.aio_now(),
                    )
                )
            except CHILD_FAILURES as exc:  # the helpdesk refused it, or never answered
                state.hypotheses.extend(decision.findings)
                reason = f"the reply could not be delivered: {error_text(exc)}"
                return await finish(TicketStatus.ESCALATED, reason)
            state.replies.append(decision.message)
            state.hypotheses.extend(decision.findings)
            if decision.resolved:
                return await finish(TicketStatus.RESOLVED)

            reply, since = await wait_for_customer(since)
            if isinstance(reply, str):
                return await finish(TicketStatus.ESCALATED, reply)
            # The next wait cannot match this reply again (its id is taken, or the
            # lookback starts after it), and a reply sent during the next round counts.
            state.customer_replies.append(reply.message)
            if reply.resolved:
                return await finish(TicketStatus.RESOLVED, resolved_by="customer")
            if state.rounds >= run.max_rounds:
                return await finish(
                    TicketStatus.ESCALATED,
                    f"the customer still needs help after {state.rounds} rounds",
                )
            follow_up = customer_reply_message(ticket.ticket_id, reply.message, state.rounds + 1)
            state.messages.append({"role": "user", "content": [*closing, *follow_up["content"]]})

    return SupportWorkflow(ticket=support_ticket, children=children)
