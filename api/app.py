"""The HTTP API: routes over the workflow core, errors as JSON that name the field.

``create_app`` takes its settings and an optional connected client, so tests
build it against a real engine or none. Bad input is a 4xx with
``{"error", "field"}`` and nothing enqueued; an engine that does not answer
is a 503; nothing a caller sends produces a 5xx with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from hatchet_sdk import Hatchet
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from agent.tickets import TICKET_ID_PATTERN, CustomerReply, Ticket, new_ticket_id
from agent.validation import field_of, first_error
from api.deliveries import DeliveryLog
from api.guard import WebhookGuard
from api.schemas import (
    AttachmentOut,
    ErrorOut,
    Message,
    ReplyAccepted,
    ReplyIn,
    ScriptOut,
    TicketAccepted,
    TicketIn,
    TicketOut,
    TicketPage,
    TicketRow,
    api_status,
)
from evidence.ingest import EvidenceRefusedError, IngestResult, Upload, check_uploads, release
from evidence.limits import EvidenceLimits
from evidence.store import StoreUnavailableError
from workflows.client import (
    TicketClosedError,
    TicketLiveError,
    TicketNotFoundError,
    check_engine,
    ingest_evidence,
    open_ticket,
    reply_to_ticket,
    with_evidence,
)
from workflows.deps import open_evidence_store
from workflows.engine import EngineUnavailableError, connect
from workflows.settings import Settings, webhook_secret_problem
from workflows.support import SupportWorkflow, build_support_workflow
from workflows.transcript import (
    CustomerReplyEntry,
    ReplyEntry,
    TranscriptError,
    fetch_transcript,
    resolve_run_id,
    summarize_run,
    ticket_runs,
)

log = logging.getLogger("support_agent.api")
TicketPath = Annotated[str, PathParam(pattern=TICKET_ID_PATTERN, max_length=64)]
# A JSON ticket or reply is parsed whole in memory. Its text is at most about
# 100,000 characters, and a character takes at most 12 bytes JSON-escaped (an
# astral one as two \uXXXX escapes): 2 MiB holds any valid one.
MAX_JSON_BODY_BYTES = 2 * 1024 * 1024
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 404, 409, 413, 422, 503)
}


class InputError(Exception):
    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class StoreDown(Exception):
    """The evidence store did not answer: a 503, the helpdesk retries."""


_TEXT_FIELDS = {
    name: {"type": "string"} for name in ("ticket_id", "customer_email", "subject", "body")
}
TICKET_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["customer_email", "subject", "body"],
                "properties": {
                    **_TEXT_FIELDS,
                    "reply_timeout_seconds": {"type": "number"},
                    "restart": {"type": "boolean"},
                    "attachments": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "Files, streamed into the evidence store; .zip, .tar, "
                        ".tar.gz/.tgz and .gz are also unpacked for the agent's code.",
                    },
                },
            }
        },
        "application/json": {"schema": TicketIn.model_json_schema()},
    },
}


class Desk:
    """The engine connection, made when first needed (the API starts even if the engine is down)."""

    def __init__(self, settings: Settings, hatchet: Hatchet | None = None) -> None:
        self.settings = settings
        self._hatchet = hatchet
        self._workflow: SupportWorkflow | None = None

    async def client(self) -> tuple[Hatchet, SupportWorkflow]:
        if self._hatchet is None:
            self._hatchet = connect(self.settings)
            self._hatchet.config.tenacity.max_attempts = 2  # fail fast; the caller retries
        if self._workflow is None:
            self._workflow = build_support_workflow(self._hatchet, self.settings)
        return self._hatchet, self._workflow


def build_ticket(body: TicketIn) -> Ticket:
    """The ticket model from the request's fields (attachments are stored separately)."""
    try:
        return Ticket(
            ticket_id=body.ticket_id or new_ticket_id(),
            customer_email=body.customer_email,
            subject=body.subject,
            body=body.body,
        )
    except ValidationError as exc:
        raise InputError(first_error(exc), field_of(exc.errors()[0]) or None) from None


def _as_request_error(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
    )


async def read_ticket_request(
    request: Request, limits: EvidenceLimits
) -> tuple[TicketIn, list[UploadFile]]:
    """The ticket's fields and its file parts, from JSON or multipart/form-data.

    Multipart file parts are spooled to temporary files by the form parser
    (never held whole in memory); only parts named ``attachments`` are taken.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(
                max_files=limits.max_files + 1, max_fields=16, max_part_size=1024 * 1024
            )
        except (MultiPartException, HTTPException) as exc:
            detail = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
            raise InputError(f"not a valid multipart/form-data body: {detail}") from None
        fields: dict[str, str] = {}
        files: list[UploadFile] = []
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in fields:
                    raise InputError(f"{key}: given more than once", key)
                fields[key] = value
            elif key == "attachments":
                files.append(value)
            else:
                raise InputError(f"{key}: files go in parts named 'attachments'", key)
        try:
            return TicketIn.model_validate(fields), files
        except ValidationError as exc:
            raise _as_request_error(exc) from None
    try:
        return TicketIn.model_validate_json(await request.body()), []
    except ValidationError as exc:
        raise _as_request_error(exc) from None


def _messages(entries: list[Any]) -> list[Message]:
    out = []
    for entry in entries:
        if isinstance(entry, ReplyEntry) and entry.status == "COMPLETED":
            out.append(Message(direction="agent", round=entry.round, message=entry.message))
        elif isinstance(entry, CustomerReplyEntry):
            out.append(
                Message(
                    direction="customer",
                    round=entry.round,
                    message=entry.message,
                    accepted=entry.accepted,
                    error=entry.error,
                )
            )
    return out


@dataclass
class TicketLock:
    """A ticket's submission lock and how many requests hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@asynccontextmanager
async def one_at_a_time(locks: dict[str, TicketLock], ticket_id: str) -> AsyncIterator[None]:
    """Hold ``ticket_id``'s lock; the entry goes when its last user leaves, however it left.

    Every refused submission (409, 422, 503) would otherwise leave a lock
    behind for the life of the process, and a request arriving after the
    entry went could run beside one still waiting on the old lock.
    """
    entry = locks.setdefault(ticket_id, TicketLock())
    entry.users += 1
    try:
        async with entry.lock:
            yield
    finally:
        entry.users -= 1
        if entry.users == 0:
            del locks[ticket_id]


def create_app(
    settings: Settings, *, hatchet: Hatchet | None = None, insecure_no_auth: bool = False
) -> FastAPI:
    secret = settings.api_secret.get_secret_value() if settings.api_secret else None
    if not secret and not insecure_no_auth:
        raise ValueError(
            "SUPPORT_AGENT_API_SECRET is not set: every request must be signed (Standard "
            "Webhooks, a whsec_<base64> secret); --insecure-no-auth is for local trials only"
        )
    if secret:
        problem = webhook_secret_problem("SUPPORT_AGENT_API_SECRET", secret)
        if problem is not None:
            raise ValueError(problem)
    desk = Desk(settings, hatchet)
    store = open_evidence_store(settings)
    submitting: dict[str, TicketLock] = {}
    deliveries = DeliveryLog(settings.state_dir / "api-deliveries.sqlite")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        deliveries.close()

    app = FastAPI(
        title="support-agent",
        version="1",
        summary="Tickets and customer replies in, the agent's status out.",
        description="Every request under /v1/ is signed per the Standard Webhooks "
        "specification (webhook-id, webhook-timestamp, webhook-signature).",
        lifespan=lifespan,
    )
    app.add_middleware(
        WebhookGuard,
        secret=None if insecure_no_auth else secret,
        deliveries=deliveries,
        max_body_bytes=settings.api_body_limit,
        max_other_body_bytes=MAX_JSON_BODY_BYTES,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0]
        location = [str(p) for p in error.get("loc", ())]
        field = ".".join(location[1:]) if location[:1] in (["body"], ["query"], ["path"]) else None
        message = str(error.get("msg", "invalid input"))
        if error.get("type") != "input":
            message = f"{field}: {message}" if field else message
        return JSONResponse(ErrorOut(error=message, field=field).model_dump(), status_code=422)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        body = ErrorOut(error=str(exc), field=exc.field).model_dump()
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(StoreDown)
    async def store_down(request: Request, exc: StoreDown) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": "attachments"}, status_code=503)

    @app.exception_handler(EngineUnavailableError)
    async def engine_down(request: Request, exc: EngineUnavailableError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": None}, status_code=503)

    @app.exception_handler(Exception)
    async def engine_error(request: Request, exc: Exception) -> JSONResponse:
        # gRPC and REST failures of the engine: our side, retry later. Logged, never echoed.
        log.error("request failed: %s: %s", type(exc).__name__, str(exc).splitlines()[:1])
        return JSONResponse(
            {"error": "the Hatchet engine did not complete the request; retry", "field": None},
            status_code=503,
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorOut}})
    async def readyz() -> JSONResponse:
        try:
            hatchet, _ = await desk.client()
            version = await check_engine(hatchet, within=3)
        except EngineUnavailableError as exc:
            return JSONResponse({"error": str(exc), "field": None}, status_code=503)
        return JSONResponse({"status": "ready", "engine": version})

    @app.post(
        "/v1/tickets",
        status_code=202,
        responses=ERRORS,
        tags=["tickets"],
        openapi_extra={"requestBody": TICKET_BODY},
    )
    async def post_ticket(request: Request) -> TicketAccepted:
        body, files = await read_ticket_request(request, settings.evidence)
        ticket = build_ticket(body)
        uploads = [Upload(f.filename or "", f.file) for f in files]
        try:  # names, count and sizes: before the engine is asked or a byte is stored
            check_uploads([(u.name, u.size) for u in uploads], settings.evidence)
        except EvidenceRefusedError as exc:
            raise InputError(str(exc), "attachments", 413 if exc.too_large else 422) from None
        hatchet, workflow = await desk.client()
        # Two deliveries of one new ticket at once: the second sees the first's run.
        async with one_at_a_time(submitting, ticket.ticket_id):
            stored = await _store(ticket, uploads) if uploads else None
            if stored is not None:
                ticket = with_evidence(ticket, stored)
            try:
                accepted = await _open(hatchet, workflow, ticket, body)
            except BaseException:
                if stored is not None:
                    await asyncio.to_thread(release, store, stored.hold)
                raise
        if stored is not None:
            accepted.warnings = stored.warnings
        return accepted

    async def _store(ticket: Ticket, uploads: list[Upload]) -> IngestResult:
        try:
            return await asyncio.to_thread(
                ingest_evidence, settings, store, ticket.ticket_id, uploads
            )
        except EvidenceRefusedError as exc:
            raise InputError(str(exc), "attachments", 413 if exc.too_large else 422) from None
        except StoreUnavailableError as exc:
            raise StoreDown(f"the evidence store is unavailable: {exc}; retry") from None

    async def _open(
        hatchet: Hatchet, workflow: SupportWorkflow, ticket: Ticket, body: TicketIn
    ) -> TicketAccepted:
        try:
            run_id = await open_ticket(
                hatchet,
                workflow,
                ticket,
                settings,
                reply_timeout_seconds=body.reply_timeout_seconds,
                restart=body.restart,
                known_run_id=deliveries.last_run(ticket.ticket_id),
            )
        except TicketLiveError as exc:
            raise InputError(str(exc), "ticket_id", status=409) from None
        deliveries.remember_run(ticket.ticket_id, run_id)
        return TicketAccepted(
            ticket_id=ticket.ticket_id,
            run_id=run_id,
            attachments=[
                AttachmentOut(
                    name=a.name,
                    media_type=a.media_type,
                    size=a.size,
                    sha256=a.sha256,
                    unpacked_files=(
                        len(a.archive.files) if a.archive and not a.archive.error else None
                    ),
                )
                for a in ticket.attachments
            ],
        )

    @app.post(
        "/v1/tickets/{ticket_id}/replies", status_code=202, responses=ERRORS, tags=["tickets"]
    )
    async def post_reply(ticket_id: TicketPath, body: ReplyIn) -> ReplyAccepted:
        reply = CustomerReply(ticket_id=ticket_id, message=body.message, resolved=body.resolved)
        hatchet, _ = await desk.client()
        try:
            event_id = await reply_to_ticket(hatchet, reply)
        except TicketNotFoundError as exc:
            raise InputError(str(exc), "ticket_id", status=404) from None
        except TicketClosedError as exc:
            raise InputError(str(exc), "ticket_id", status=409) from None
        return ReplyAccepted(ticket_id=ticket_id, event_id=event_id)

    @app.get("/v1/tickets/{ticket_id}", responses=ERRORS, tags=["tickets"])
    async def get_ticket(ticket_id: TicketPath) -> TicketOut:
        hatchet, _ = await desk.client()
        try:
            transcript = await fetch_transcript(hatchet, await resolve_run_id(hatchet, ticket_id))
        except TranscriptError as exc:
            raise InputError(str(exc), "ticket_id", status=404) from None
        outcome = transcript.outcome
        return TicketOut(
            ticket_id=transcript.ticket.ticket_id,
            run_id=transcript.run_id,
            status=api_status(transcript.status),
            subject=transcript.ticket.subject,
            customer_email=transcript.ticket.customer_email,
            created_at=transcript.created_at,
            finished_at=transcript.finished_at,
            messages=_messages(transcript.entries),
            scripts=[
                ScriptOut(
                    step=s.step,
                    round=s.round,
                    purpose=s.purpose,
                    language=s.language,
                    status=s.status,
                    exit_code=s.exit_code,
                    timed_out=s.timed_out,
                    duration_seconds=s.duration_seconds,
                )
                for s in transcript.scripts
            ],
            escalation_reason=outcome.escalation_reason if outcome else None,
            tokens=transcript.cost.tokens,
            sandbox_seconds=transcript.cost.sandbox_seconds,
        )

    @app.get("/v1/tickets", responses=ERRORS, tags=["tickets"])
    async def list_tickets(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    ) -> TicketPage:
        hatchet, _ = await desk.client()
        runs = await ticket_runs(hatchet, limit=limit + 1, offset=offset)
        rows = []
        for run in runs[:limit]:
            summary = await summarize_run(hatchet, run)
            if summary is not None:
                rows.append(
                    TicketRow(
                        ticket_id=summary.ticket_id,
                        run_id=summary.run_id,
                        status=api_status(summary.status),
                        subject=summary.subject,
                        customer_email=summary.customer_email,
                        created_at=summary.created_at,
                        finished_at=summary.finished_at,
                    )
                )
        more = len(runs) > limit
        return TicketPage(tickets=rows, next_offset=offset + limit if more else None)

    return app
