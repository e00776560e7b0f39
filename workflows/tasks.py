"""The child tasks: every side effect of a ticket lives in one of these.

Each task's input and output are what a reviewer sees in the dashboard:
``llm-turn`` holds the exact request and the model's answer, ``run-code``
holds the script, its purpose and what it printed. Retries are Hatchet's;
errors that cannot succeed on retry are marked non-retryable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from hatchet_sdk import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    DesiredWorkerLabel,
    Hatchet,
    NonRetryableException,
    RateLimit,
    V1TaskStatus,
)
from hatchet_sdk.clients.rest.exceptions import BadRequestException, NotFoundException
from hatchet_sdk.runnables.workflow import Standalone

from agent.llm import LLMError, TurnRequest, TurnResult
from agent.tickets import Ticket, TriageResult
from agent.triage import triage
from evidence.store import EvidenceCorruptError, EvidenceMissingError
from sandbox import InvalidInputError
from workflows import steps
from workflows.delivery import DeliveryRefused
from workflows.deps import Dependencies
from workflows.models import (
    CodeRunRequest,
    CodeRunResult,
    EscalationRecord,
    EscalationRequest,
    ReceivedReply,
    ReplyEvent,
    ReplyRequest,
    ReplySent,
    ResolutionRecord,
    ResolutionRequest,
)
from workflows.names import SANDBOX_LABEL, SANDBOX_LABEL_VALUE, TaskName
from workflows.settings import Settings
from workflows.streams import CodeFinished, CodeStarted, encode

STREAM_FLUSH_SECONDS = 0.05
T = TypeVar("T")


class StreamBuffer:
    """Batches streamed text: one engine call per ~50 ms instead of one per token."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._parts: list[str] = []
        self._last = time.monotonic()

    async def write(self, text: str) -> None:
        self._parts.append(text)
        if time.monotonic() - self._last >= STREAM_FLUSH_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        if self._parts:
            await self._ctx.aio_put_stream("".join(self._parts))
            self._parts.clear()
        self._last = time.monotonic()


async def final_if_refused(delivery: Awaitable[T]) -> T:
    """A delivery the receiver refused (a 4xx) cannot succeed on retry: tell Hatchet so."""
    try:
        return await delivery
    except DeliveryRefused as exc:
        raise NonRetryableException(str(exc)) from exc


def _per_customer(settings: Settings) -> list[ConcurrencyExpression]:
    if settings.per_customer_concurrency == 0:
        return []
    return [
        ConcurrencyExpression(
            expression="input.customer",
            max_runs=settings.per_customer_concurrency,
            limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
        )
    ]


@dataclass(frozen=True)
class ChildTasks:
    triage: Standalone[Ticket, TriageResult]
    llm_turn: Standalone[TurnRequest, TurnResult]
    run_code: Standalone[CodeRunRequest, CodeRunResult]
    receive_reply: Standalone[ReplyEvent, ReceivedReply]
    send_reply: Standalone[ReplyRequest, ReplySent]
    escalate: Standalone[EscalationRequest, EscalationRecord]
    resolve: Standalone[ResolutionRequest, ResolutionRecord]

    def all(self) -> list[Any]:
        return [
            self.triage,
            self.llm_turn,
            self.run_code,
            self.receive_reply,
            self.send_reply,
            self.escalate,
            self.resolve,
        ]


def build_child_tasks(
    hatchet: Hatchet, settings: Settings, deps: Dependencies | None
) -> ChildTasks:
    """Declare the child tasks. ``deps`` is None on clients, which never execute them."""

    def need() -> Dependencies:
        if deps is None:
            raise NonRetryableException("this process has no task dependencies (client only)")
        return deps

    # Hatchet cancels a task still queued after its schedule timeout (5 minutes by default),
    # and its ticket with it. A burst of tickets, a rate limit or a fleet without a free
    # worker must only delay a ticket, never fail it: every child may wait as long as its
    # ticket may live.
    queued = settings.ticket_execution_timeout

    @hatchet.task(
        name=TaskName.TRIAGE,
        input_validator=Ticket,
        execution_timeout=timedelta(seconds=30),
        schedule_timeout=queued,
        retries=2,
        backoff_factor=2,
    )
    async def triage_ticket(ticket: Ticket, ctx: Context) -> TriageResult:
        return triage(ticket)

    @hatchet.task(
        name=TaskName.LLM_TURN,
        input_validator=TurnRequest,
        execution_timeout=timedelta(seconds=settings.llm_timeout_seconds + 30),
        schedule_timeout=queued,  # also behind the shared rate limit
        retries=settings.llm_retries,
        backoff_factor=2,
        backoff_max_seconds=60,
        rate_limits=[RateLimit(static_key=settings.llm_rate_limit_key, units=1)],
        concurrency=_per_customer(settings),
    )
    async def llm_turn(request: TurnRequest, ctx: Context) -> TurnResult:
        stream = StreamBuffer(ctx)
        try:
            result = await steps.complete_turn(need(), request, on_text=stream.write)
        except LLMError as exc:
            if not exc.retryable:
                raise NonRetryableException(str(exc)) from exc
            raise
        finally:
            await stream.flush()
        return result

    @hatchet.task(
        name=TaskName.RUN_CODE,
        input_validator=CodeRunRequest,
        execution_timeout=timedelta(seconds=settings.sandbox.max_timeout_seconds + 120),
        schedule_timeout=queued,
        retries=3,
        backoff_factor=2,
        backoff_max_seconds=30,
        desired_worker_labels=[
            DesiredWorkerLabel(key=SANDBOX_LABEL, value=SANDBOX_LABEL_VALUE, required=True)
        ],
        concurrency=_per_customer(settings),
    )
    async def run_code(request: CodeRunRequest, ctx: Context) -> CodeRunResult:
        async def emit(event: CodeStarted | CodeFinished) -> None:
            await ctx.aio_put_stream(encode(event))

        try:
            return await steps.execute_code(need(), request, step_id=ctx.task_run_id, emit=emit)
        except (InvalidInputError, EvidenceMissingError, EvidenceCorruptError) as exc:
            # Gone or corrupted evidence does not come back on a retry. A store
            # that did not answer (StoreUnavailableError) is left to Hatchet's
            # retries, so a hiccup never ends a ticket's investigation.
            raise NonRetryableException(str(exc)) from exc

    @hatchet.task(
        name=TaskName.RECEIVE_REPLY,
        input_validator=ReplyEvent,
        execution_timeout=timedelta(seconds=30),
        schedule_timeout=queued,
        retries=2,
    )
    async def receive_reply(event: ReplyEvent, ctx: Context) -> ReceivedReply:
        # Records the event as it arrived (this task's input) and what was made
        # of it (its output): the transcript reads customer replies from here.
        received = steps.receive_reply(event, closed_run=await closed_run_addressed(event, ctx))
        if not received.accepted:
            ctx.log(f"reply event refused: {received.error}")
        return received

    async def closed_run_addressed(event: ReplyEvent, ctx: Context) -> str | None:
        """The run a reply answers, if that is another run of the ticket and it has closed.

        A reply addressed to a run that was replaced (cancelled: the ticket was
        sent again) or is not listed as finished yet is this run's to take.
        """
        addressed = steps.addressed_run(event)
        if addressed is None or addressed == ctx.parent_workflow_run_id:
            return None
        try:
            status = await hatchet.runs.aio_get_status(addressed)
        except (NotFoundException, BadRequestException):  # no such run here: not a closed one
            return None
        closed = status in (V1TaskStatus.COMPLETED, V1TaskStatus.FAILED)
        return addressed if closed else None

    # Deliveries: Hatchet retries timeouts and 5xx with backoff; a refusal
    # (another 4xx) cannot succeed on retry. The event id is stable, so a
    # retry is recognisably the same message to the receiver.
    delivery_policy: dict[str, Any] = {
        "execution_timeout": timedelta(seconds=settings.delivery_timeout_seconds + 20),
        "schedule_timeout": queued,
        "retries": 5,
        "backoff_factor": 2,
        "backoff_max_seconds": 60,
    }

    @hatchet.task(name=TaskName.SEND_REPLY, input_validator=ReplyRequest, **delivery_policy)
    async def send_reply(request: ReplyRequest, ctx: Context) -> ReplySent:
        ctx.log(f"reply to {request.customer_email} (round {request.round}): {request.message}")
        return await final_if_refused(steps.send_reply(need(), request))

    @hatchet.task(name=TaskName.ESCALATE, input_validator=EscalationRequest, **delivery_policy)
    async def escalate_ticket(request: EscalationRequest, ctx: Context) -> EscalationRecord:
        ctx.log(steps.escalation_summary(request.packet))
        return await final_if_refused(steps.escalate(need(), request))

    @hatchet.task(name=TaskName.RESOLVE, input_validator=ResolutionRequest, **delivery_policy)
    async def resolve_ticket(request: ResolutionRequest, ctx: Context) -> ResolutionRecord:
        ctx.log(f"ticket {request.ticket_id} resolved by the {request.resolved_by}")
        return await final_if_refused(steps.resolve(need(), request))

    return ChildTasks(
        triage=triage_ticket,
        llm_turn=llm_turn,
        run_code=run_code,
        receive_reply=receive_reply,
        send_reply=send_reply,
        escalate=escalate_ticket,
        resolve=resolve_ticket,
    )
