"""A ticket run as a transcript: the ticket, every child task in order, the outcome.

Everything here is read back from the engine's REST API, the records the
dashboard shows, so a transcript can be built for any run, finished or not,
from any machine. ``show`` prints one; ``watch`` rebuilds it as the run goes
and prints what is new. The JSON form (``Transcript.model_dump``) is what
``show --json`` prints: its keys are a stable interface.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from hatchet_sdk import Hatchet
from hatchet_sdk.clients.rest.exceptions import NotFoundException
from pydantic import BaseModel, Field, ValidationError

from agent.attachments import AttachmentRef
from agent.llm import TurnResult
from agent.packet import EscalationPacket, ScriptRecord
from agent.tickets import TICKET_ID_PATTERN, TriageResult
from workflows.models import (
    CodeRunRequest,
    CodeRunResult,
    EscalationRequest,
    ReceivedReply,
    ReplyEvent,
    ReplyRequest,
    RunStatus,
    TicketOutcome,
    TicketRun,
    TicketStatus,
)
from workflows.names import TaskName

# Children are looked up from a little before their parent was created.
_CLOCK_SLACK = timedelta(minutes=1)
# The REST list warns about ranges of 7 days or more.
MAX_LOOKBACK = timedelta(days=7) - timedelta(minutes=5)
_CHILDREN_LIMIT = 1000
_WORKFLOW_PAGE = 200
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Keys of the envelope the engine stores around a task's own input.
_WORKFLOW_IDS: dict[tuple[str, str, str], str] = {}
_ENVELOPE = frozenset({"input", "overrides", "parents", "triggered_by", "triggers", "user_data"})

log = logging.getLogger(__name__)


class TranscriptError(LookupError):
    """The run does not exist, or is not a support ticket; the message says which."""


@dataclass(frozen=True)
class TaskRun:
    """One task run as the REST API reports it, with the namespace taken off its name."""

    run_id: str
    task: str
    status: str
    created_at: datetime
    finished_at: datetime | None = None
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    parent_id: str | None = None

    @property
    def finished(self) -> bool:
        return RunStatus(self.status).finished

    @property
    def completed(self) -> bool:
        return self.status == RunStatus.COMPLETED

    @classmethod
    def from_summary(cls, row: Any, namespace: str) -> TaskRun:
        """From a ``V1TaskSummary`` (a list row or ``GET /tasks/{id}``)."""
        name: str = row.workflow_name or row.display_name or ""
        return cls(
            run_id=row.task_external_id,
            task=name.removeprefix(namespace) if namespace else name,
            status=_status(row.status),
            created_at=row.created_at,
            finished_at=row.finished_at,
            input=unwrap_input(row.input),
            output=dict(row.output or {}),
            error=row.error_message or None,
            parent_id=row.parent_task_external_id,
        )


def _real_time(value: datetime | None) -> datetime | None:
    """None for Go's zero time, which the API reports for a run it has just accepted."""
    return value if value is not None and value.year > 1970 else None


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def unwrap_input(raw: dict[str, Any] | None) -> dict[str, Any]:
    """A task's own input: list rows wrap it in the engine's trigger envelope."""
    raw = dict(raw or {})
    inner = raw.get("input")
    if isinstance(inner, dict) and set(raw) <= _ENVELOPE:
        return inner
    return raw


class TicketView(BaseModel):
    ticket_id: str
    customer_email: str
    subject: str
    body: str
    attachments: list[AttachmentRef]


class Cost(BaseModel):
    tokens: int = 0
    sandbox_seconds: float = 0.0


class ChildEntry(BaseModel):
    """An entry recorded by a child task: its run id (a task id) and status."""

    id: str
    status: str


class TurnEntry(ChildEntry):
    """One model turn (an ``llm-turn`` child)."""

    kind: Literal["turn"] = "turn"
    number: int
    round: int
    planner: str = ""
    text: str = ""
    tools: list[str] = Field(default_factory=list)
    tokens: int = 0
    error: str | None = None


class ScriptEntry(ScriptRecord):
    """One code run (a ``run-code`` child): the escalation packet's record, plus its task."""

    kind: Literal["script"] = "script"
    id: str
    status: str
    output_files: list[str] = Field(default_factory=list)


class ReplyEntry(ChildEntry):
    """A reply to the customer (a ``send-reply`` child)."""

    kind: Literal["reply"] = "reply"
    round: int
    message: str
    closes_ticket: bool = False


class CustomerReplyEntry(BaseModel):
    """A reply event for the ticket (a ``receive-reply`` child): taken, or refused and why."""

    kind: Literal["customer_reply"] = "customer_reply"
    id: str
    round: int
    message: str
    accepted: bool = True
    error: str | None = None


class EscalationEntry(ChildEntry):
    """The hand-over to a human (an ``escalate-ticket`` child)."""

    kind: Literal["escalation"] = "escalation"
    reason: str


Entry = Annotated[
    TurnEntry | ScriptEntry | ReplyEntry | CustomerReplyEntry | EscalationEntry,
    Field(discriminator="kind"),
]


class Transcript(BaseModel):
    """A ticket run, everything in order; ``show --json`` prints this."""

    version: Literal[1] = 1
    run_id: str
    ticket: TicketView
    status: TicketStatus
    run_status: str
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    triage: TriageResult | None = None
    entries: list[Entry] = Field(default_factory=list)
    escalation: EscalationPacket | None = None
    outcome: TicketOutcome | None = None
    cost: Cost = Field(default_factory=Cost)

    @property
    def finished(self) -> bool:
        return RunStatus(self.run_status).finished

    @property
    def scripts(self) -> list[ScriptEntry]:
        return [e for e in self.entries if isinstance(e, ScriptEntry)]

    @property
    def turns(self) -> list[TurnEntry]:
        return [e for e in self.entries if isinstance(e, TurnEntry)]

    @property
    def replies(self) -> list[ReplyEntry]:
        return [e for e in self.entries if isinstance(e, ReplyEntry)]


class TicketSummary(BaseModel):
    """One row of ``tickets``; ``tickets --json`` prints a list of these."""

    ticket_id: str
    run_id: str
    status: TicketStatus
    subject: str
    customer_email: str
    created_at: datetime
    finished_at: datetime | None
    age_seconds: float
    rounds: int
    scripts_run: int
    tokens: int
    sandbox_seconds: float


# -- building a transcript from task runs (no I/O) ---------------------------------


def _ticket_run(run: TaskRun) -> TicketRun:
    try:
        return TicketRun.model_validate(run.input)
    except ValidationError as exc:
        raise TranscriptError(
            f"run {run.run_id} is not a support ticket (its input is not a ticket)"
        ) from exc


def _outcome(run: TaskRun) -> TicketOutcome | None:
    if not run.completed:
        return None
    try:
        return TicketOutcome.model_validate(run.output)
    except ValidationError:
        return None


def _order(child: TaskRun) -> tuple[datetime, int, str]:
    step = child.input.get("step") if child.task == TaskName.RUN_CODE else 0
    return (child.created_at, step if isinstance(step, int) else 0, child.run_id)


def _turn(child: TaskRun, number: int, round_number: int) -> TurnEntry:
    entry = TurnEntry(
        id=child.run_id, status=child.status, number=number, round=round_number, error=child.error
    )
    if child.completed:
        result = TurnResult.model_validate(child.output)
        entry.planner, entry.text, entry.tokens = result.planner, result.text, result.usage.total
        entry.tools = [call.name for call in result.tool_calls]
    return entry


_REQUEST_FIELDS = {"round", "step", "purpose", "language", "code"}
_RESULT_FIELDS = set(ScriptEntry.model_fields) & set(CodeRunResult.model_fields) - {"purpose"}


def _script(child: TaskRun) -> ScriptEntry:
    fields = CodeRunRequest.model_validate(child.input).model_dump(include=_REQUEST_FIELDS)
    fields["error"] = child.error
    if child.completed:
        result = CodeRunResult.model_validate(child.output)
        fields |= result.model_dump(include=_RESULT_FIELDS)
    return ScriptEntry(id=child.run_id, status=child.status, **fields)


def _status_of(run: TaskRun, outcome: TicketOutcome | None, entries: list[Any]) -> TicketStatus:
    if run.status == RunStatus.COMPLETED:
        return TicketStatus(outcome.status) if outcome is not None else TicketStatus.FAILED
    if run.status == RunStatus.FAILED:
        return TicketStatus.FAILED
    if run.status == RunStatus.CANCELLED:
        return TicketStatus.CANCELLED
    if run.status == RunStatus.QUEUED:
        return TicketStatus.QUEUED
    # Waiting: the last thing that happened is a reply sent (or a reply event refused).
    last = entries[-1] if entries else None
    if isinstance(last, CustomerReplyEntry) and not last.accepted:
        return TicketStatus.WAITING
    if isinstance(last, ReplyEntry) and last.status == RunStatus.COMPLETED:
        return TicketStatus.DIAGNOSING if last.closes_ticket else TicketStatus.WAITING
    return TicketStatus.DIAGNOSING


def _customer_reply(child: TaskRun) -> CustomerReplyEntry | None:
    """A ``receive-reply`` child as an entry; None until it has finished."""
    if not child.completed:
        return None
    received = ReceivedReply.model_validate(child.output)
    if received.accepted:
        return CustomerReplyEntry(id=child.run_id, round=received.round, message=received.message)
    payload = ReplyEvent.model_validate(child.input).payload
    shown = payload.get("message") if isinstance(payload, dict) else payload
    return CustomerReplyEntry(
        id=child.run_id,
        round=received.round,
        message=str(shown)[:2000] if shown is not None else "",
        accepted=False,
        error=received.error,
    )


def _add_child(
    child: TaskRun,
    entries: list[Any],
    round_number: int,
    turns: int,
    triage: TriageResult | None,
    escalation: EscalationPacket | None,
) -> tuple[int, int, TriageResult | None, EscalationPacket | None]:
    """Add one child's entry to ``entries``; the loop's state after it."""
    if child.task == TaskName.TRIAGE and child.completed:
        triage = TriageResult.model_validate(child.output)
    elif child.task == TaskName.LLM_TURN:
        turns += 1
        entries.append(_turn(child, turns, round_number))
    elif child.task == TaskName.RUN_CODE:
        entries.append(_script(child))
    elif child.task == TaskName.RECEIVE_REPLY:
        received = _customer_reply(child)
        if received is not None:
            entries.append(received)
    elif child.task == TaskName.SEND_REPLY:
        request = ReplyRequest.model_validate(child.input)
        fields = request.model_dump(include={"round", "message", "closes_ticket"})
        entries.append(ReplyEntry(id=child.run_id, status=child.status, **fields))
        round_number = request.round + 1
    elif child.task == TaskName.ESCALATE:
        packet = EscalationRequest.model_validate(child.input).packet
        escalation = escalation or packet
        entries.append(EscalationEntry(id=child.run_id, status=child.status, reason=packet.reason))
    return round_number, turns, triage, escalation


def build_transcript(run: TaskRun, children: Sequence[TaskRun]) -> Transcript:
    """Put a ticket run and its children's records in order (pure: no engine calls)."""
    submitted = _ticket_run(run)
    ticket = submitted.ticket
    outcome = _outcome(run)
    triage: TriageResult | None = submitted.triage  # or, for older runs, their triage child
    escalation = outcome.escalation if outcome else None
    entries: list[Any] = []
    round_number, turns = 1, 0
    for child in sorted(children, key=_order):
        try:
            round_number, turns, triage, escalation = _add_child(
                child, entries, round_number, turns, triage, escalation
            )
        except ValidationError as exc:
            # A record of another shape (a payload gone, an older worker's):
            # the rest of the ticket still shows; this child is left out.
            log.warning(
                "ticket %s: the record of %s %s is unreadable, left out (%s)",
                ticket.ticket_id, child.task, child.run_id, str(exc).splitlines()[0],
            )  # fmt: skip
    if outcome is not None:
        cost = Cost(tokens=outcome.spent.tokens, sandbox_seconds=outcome.spent.sandbox_seconds)
        triage = triage or TriageResult(
            category=outcome.triage_category, priority=outcome.triage_priority, reason=""
        )
    else:
        cost = Cost(
            tokens=sum(e.tokens for e in entries if isinstance(e, TurnEntry)),
            sandbox_seconds=sum(e.duration_seconds for e in entries if isinstance(e, ScriptEntry)),
        )
    return Transcript(
        run_id=run.run_id,
        ticket=TicketView(
            ticket_id=ticket.ticket_id,
            customer_email=ticket.customer_email,
            subject=ticket.subject,
            body=ticket.body,
            attachments=[a.ref for a in ticket.attachments],
        ),
        status=_status_of(run, outcome, entries),
        run_status=run.status,
        created_at=run.created_at,
        finished_at=run.finished_at,
        error=run.error,
        triage=triage,
        entries=entries,
        escalation=escalation,
        outcome=outcome,
        cost=cost,
    )


def summarize(transcript: Transcript, now: datetime | None = None) -> TicketSummary:
    now = now or datetime.now(tz=UTC)
    outcome = transcript.outcome
    return TicketSummary(
        ticket_id=transcript.ticket.ticket_id,
        run_id=transcript.run_id,
        status=transcript.status,
        subject=transcript.ticket.subject,
        customer_email=transcript.ticket.customer_email,
        created_at=transcript.created_at,
        finished_at=transcript.finished_at,
        age_seconds=max(0.0, (now - transcript.created_at).total_seconds()),
        rounds=outcome.rounds if outcome else len(transcript.replies),
        scripts_run=outcome.scripts_run if outcome else len(transcript.scripts),
        tokens=transcript.cost.tokens,
        sandbox_seconds=transcript.cost.sandbox_seconds,
    )


# -- reading from the engine -------------------------------------------------------


def is_run_id(value: str) -> bool:
    return bool(_UUID.match(value))


async def get_run(hatchet: Hatchet, run_id: str) -> TaskRun:
    """The ticket run itself (``GET /api/v1/stable/workflow-runs/{id}``)."""
    if not is_run_id(run_id):
        raise TranscriptError(f"{run_id!r} is not a run id (a UUID)")
    try:
        details = await hatchet.runs.aio_get(run_id)
    except NotFoundException as exc:
        raise TranscriptError(f"no run {run_id} on this engine") from exc
    run = details.run
    return TaskRun(
        run_id=run_id,
        task=TaskName.TICKET,
        status=_status(run.status),
        created_at=_real_time(run.created_at) or _real_time(run.started_at) or datetime.now(tz=UTC),
        finished_at=run.finished_at,
        input=unwrap_input(run.input),
        output=dict(run.output or {}),
        error=run.error_message or None,
        parent_id=run.parent_task_external_id,
    )


class RunReader:
    """Reads a ticket run and its children again and again (``watch``), cheaply.

    Children are listed without payloads (an ``llm-turn`` input holds the
    whole conversation); a child's input and output are fetched only when it
    is new or its status changed, and the ticket run itself (whose input holds
    the attachments) only when its status changed.
    """

    def __init__(self, hatchet: Hatchet, run_id: str, run: TaskRun | None = None) -> None:
        self._hatchet = hatchet
        self._run_id = run_id
        self._run = run
        self._children: dict[str, TaskRun] = {}

    async def read(self) -> Transcript:
        run = await self._ticket_run()
        ticket_id = _ticket_run(run).ticket.ticket_id
        rows = (
            await self._hatchet.runs.aio_list(
                since=run.created_at - _CLOCK_SLACK,
                only_tasks=True,
                limit=_CHILDREN_LIMIT,
                additional_metadata={"ticket_id": ticket_id},
                include_payloads=False,
            )
        ).rows
        namespace = self._hatchet.config.namespace
        listed = [
            TaskRun.from_summary(row, namespace)
            for row in rows
            if row.parent_task_external_id == run.run_id
        ]
        stale = [
            c
            for c in listed
            if c.run_id not in self._children or self._children[c.run_id].status != c.status
        ]
        details = await asyncio.gather(
            *(self._hatchet.runs.aio_get_task_run(c.run_id) for c in stale)
        )
        for child, detail in zip(stale, details, strict=True):
            # Name and times from the list row: the task endpoint leaves them out.
            self._children[child.run_id] = replace(
                child,
                input=unwrap_input(detail.input),
                output=dict(detail.output or {}),
                error=detail.error_message or None,
            )
        return build_transcript(run, [self._children[c.run_id] for c in listed])

    async def _ticket_run(self) -> TaskRun:
        if self._run is None:
            self._run = await get_run(self._hatchet, self._run_id)
        elif not self._run.finished:
            status = _status(await self._hatchet.runs.aio_get_status(self._run_id))
            if status != self._run.status:
                self._run = await get_run(self._hatchet, self._run_id)
        return self._run


async def fetch_transcript(hatchet: Hatchet, run_id: str) -> Transcript:
    return await RunReader(hatchet, run_id).read()


async def ticket_workflow_id(hatchet: Hatchet) -> str | None:
    """The id of ``support-ticket`` in this client's namespace; None if never registered.

    The engine matches the name as a substring (every namespace's ticket
    workflow matches), so the pages are searched for the exact name.
    """
    name = hatchet.config.apply_namespace(TaskName.TICKET)
    key = (hatchet.config.server_url, hatchet.tenant_id, name)
    if key in _WORKFLOW_IDS:  # an id never changes once registered
        return _WORKFLOW_IDS[key]
    offset = 0
    while True:
        page = await hatchet.workflows.aio_list(
            workflow_name=TaskName.TICKET, limit=_WORKFLOW_PAGE, offset=offset
        )
        rows = page.rows or []
        found = next((w.metadata.id for w in rows if w.name == name), None)
        if found is not None:
            _WORKFLOW_IDS[key] = found
        if found is not None or len(rows) < _WORKFLOW_PAGE:
            return found
        offset += _WORKFLOW_PAGE


async def ticket_runs(
    hatchet: Hatchet,
    *,
    limit: int,
    since: timedelta = MAX_LOOKBACK,
    ticket_id: str | None = None,
    offset: int = 0,
) -> list[TaskRun]:
    """Recent ``support-ticket`` runs in this namespace, newest first."""
    workflow_id = await ticket_workflow_id(hatchet)
    if workflow_id is None:
        return []
    rows = (
        await hatchet.runs.aio_list(
            since=datetime.now(tz=UTC) - since,
            limit=limit,
            offset=offset or None,
            workflow_ids=[workflow_id],
            additional_metadata={"ticket_id": ticket_id} if ticket_id else None,
        )
    ).rows
    runs = [TaskRun.from_summary(row, hatchet.config.namespace) for row in rows]
    return sorted(runs, key=lambda r: r.created_at, reverse=True)


async def resolve_run_id(hatchet: Hatchet, ref: str) -> str:
    """A run id as given, or the latest run of a ticket id in this namespace.

    A ticket id may itself be a UUID (helpdesks often use them): a UUID is a
    ticket's id when a ticket has it, else a run id.
    """
    if is_run_id(ref):
        runs = await ticket_runs(hatchet, limit=1, ticket_id=ref)
        return runs[0].run_id if runs else ref
    if not re.match(TICKET_ID_PATTERN, ref):
        raise TranscriptError(f"{ref!r} is neither a run id nor a ticket id")
    runs = await ticket_runs(hatchet, limit=1, ticket_id=ref)
    if not runs:
        raise TranscriptError(f"no run of ticket {ref} in the last 7 days in {describe(hatchet)}")
    return runs[0].run_id


async def summarize_run(hatchet: Hatchet, run: TaskRun) -> TicketSummary | None:
    """A ``tickets`` row; a running ticket's children are read for its status and cost."""
    try:
        if run.finished:
            return summarize(build_transcript(run, []))
        return summarize(await RunReader(hatchet, run.run_id, run).read())
    except TranscriptError:
        return None


def describe(hatchet: Hatchet) -> str:
    namespace = hatchet.config.namespace.rstrip("_")
    return f"namespace {namespace!r}" if namespace else "the default namespace"
