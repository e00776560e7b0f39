"""Builders and helpers shared by the unit, integration and end-to-end suites."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from agent.attachments import Attachment
from agent.llm import TurnRequest
from agent.tickets import Ticket
from evidence import MemoryStore, ingest_bytes
from evidence.store import EvidenceStore
from workflows.client import ticket_run
from workflows.models import TicketRun
from workflows.settings import Settings

T = TypeVar("T")

# Where make_ticket keeps attachments unless told otherwise: unit tests hand
# this store to the code under test (Dependencies, EvidenceLoader).
TEST_STORE = MemoryStore()


def new_ticket_id(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def turn_request(**fields: Any) -> TurnRequest:
    """A model turn's request, ``fields`` replacing the defaults (one user message)."""
    defaults: dict[str, Any] = dict(
        ticket_id="T-1",
        customer="c",
        model="m",
        max_tokens=256,
        system="s",
        tools=[],
        messages=[{"role": "user", "content": "hi"}],
    )
    return TurnRequest(**{**defaults, **fields})


def make_ticket(
    ticket_id: str | None = None,
    *,
    body: str = "The CSV export fails with error 500.",
    subject: str = "Export broken",
    email: str = "dana@example.com",
    files: dict[str, bytes] | None = None,
    store: EvidenceStore | None = None,
) -> Ticket:
    """A valid ticket; ``files`` become attachments (name -> content) kept in ``store``."""
    ticket_id = ticket_id or new_ticket_id()
    return Ticket(
        ticket_id=ticket_id,
        customer_email=email,
        subject=subject,
        body=body,
        attachments=ingest_bytes(store or TEST_STORE, files or {}, ticket_id=ticket_id),
    )


def attachment(
    name: str, data: bytes, *, store: EvidenceStore | None = None, ticket_id: str = "T-test"
) -> Attachment:
    """One attachment, its content kept in ``store`` (default: ``TEST_STORE``)."""
    (stored,) = ingest_bytes(store or TEST_STORE, {name: data}, ticket_id=ticket_id)
    return stored


def make_run(
    ticket: Ticket | None = None, settings: Settings | None = None, **policy: Any
) -> TicketRun:
    """A ticket run with the policy a submitter with these settings would send."""
    run = ticket_run(ticket or make_ticket(), settings or Settings(llm="offline"))
    return run.model_copy(update=policy) if policy else run


def offline_token() -> str:
    """A syntactically valid Hatchet token: enough to construct a client that never connects."""

    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {
        "sub": "tenant",
        "server_url": "http://127.0.0.1:1",
        "grpc_broadcast_address": "127.0.0.1:1",
    }
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    every: float = 0.25,
    what: str = "the condition",
) -> T:
    """Poll ``check`` until it returns something other than None (or False); fail after ``within``.

    Instead of fixed sleeps: fast when the system is fast, and a clear
    message naming what never happened when it is not.
    """
    deadline = time.monotonic() + within
    last: T | None = None
    while True:
        last = await check()
        if last is not None and last is not False:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within:g} s (last: {last!r})")
        await asyncio.sleep(every)
