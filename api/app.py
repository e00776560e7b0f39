"""The HTTP API: routes over the workflow core, errors as JSON that name the field.

``create_app`` takes its settings and an optional connected client, so tests
build it against a real engine or none. Bad input is a 4xx with
``{"error", "field"}`` and nothing enqueued; an engine that does not answer
is a 503; nothing a caller sends produces a 5xx with a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from hatchet_sdk import Hatchet
from pydantic import ValidationError
from standardwebhooks import Webhook

from agent.attachments import Attachment
from agent.tickets import TICKET_ID_PATTERN, CustomerReply, Ticket, new_ticket_id
from agent.validation import field_of, first_error
from api.deliveries import DeliveryLog
from api.guard import WebhookGuard
from api.schemas import (
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
from workflows.client import (
    TicketClosedError,
    TicketLiveError,
    TicketNotFoundError,
    check_engine,
    open_ticket,
    reply_to_ticket,
)
from workflows.engine import EngineUnavailableError, connect
from workflows.settings import Settings
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
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 404, 409, 413, 422, 503)
}


class InputError(Exception):
    def __init__(self, message: str, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


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
    """The ticket model from the request; attachments decoded and checked."""
    attachments = []
    for index, item in enumerate(body.attachments):
        where = f"attachments.{index}"
        try:
            data = base64.b64decode(item.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(
                f"attachment {item.name[:100]!r}: content_base64 is not valid base64",
                f"{where}.content_base64",
            ) from None
        try:
            attachments.append(Attachment.from_bytes(item.name, data))
        except ValidationError as exc:
            raise InputError(first_error(exc), f"{where}.name") from None
        except ValueError as exc:
            raise InputError(str(exc), f"{where}.content_base64", status=413) from None
    try:
        return Ticket(
            ticket_id=body.ticket_id or new_ticket_id(),
            customer_email=body.customer_email,
            subject=body.subject,
            body=body.body,
            attachments=attachments,
        )
    except ValidationError as exc:
        raise InputError(first_error(exc), field_of(exc.errors()[0]) or None) from None


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
        try:
            Webhook(secret)
        except Exception:  # never echo the secret
            raise ValueError(
                "SUPPORT_AGENT_API_SECRET is not a valid whsec_<base64> secret"
            ) from None
    desk = Desk(settings, hatchet)
    submitting: dict[str, asyncio.Lock] = {}
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
        max_body_bytes=settings.api_max_body_bytes,
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

    @app.post("/v1/tickets", status_code=202, responses=ERRORS, tags=["tickets"])
    async def post_ticket(body: TicketIn) -> TicketAccepted:
        ticket = build_ticket(body)
        hatchet, workflow = await desk.client()
        # Two deliveries of one new ticket at once: the second sees the first's run.
        lock = submitting.setdefault(ticket.ticket_id, asyncio.Lock())
        async with lock:
            return await _open(hatchet, workflow, ticket, body)

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
        submitting.pop(ticket.ticket_id, None)
        return TicketAccepted(ticket_id=ticket.ticket_id, run_id=run_id)

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

