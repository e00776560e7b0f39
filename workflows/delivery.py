"""Outbound events to the helpdesk: signed JSON POSTs, per the Standard Webhooks spec.

The agent's replies, resolutions and escalations are delivered by child
tasks, so Hatchet owns the retries: a timeout, a connection failure, a 5xx,
408 or 429 raises a retryable error; any other 4xx means the request itself
is wrong and is marked non-retryable. Each event's ``webhook-id`` is derived
from the ticket run and what happened in it, so a retried or replayed
delivery is recognisably the same message and a receiver that dedupes on
the id never shows the customer a reply twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2
from pydantic import BaseModel, Field
from standardwebhooks import Webhook

EventType = Literal["ticket.replied", "ticket.resolved", "ticket.escalated"]
RETRYABLE_STATUS = frozenset({408, 429})
# How much of a helpdesk's answer is read: its status is all a delivery needs.
MAX_ANSWER_BYTES = 64 * 1024


def event_id(run_id: str, kind: EventType, round_number: int) -> str:
    """Stable per message: the same ticket run, event and round give the same id."""
    digest = hashlib.sha256(f"{run_id}:{kind}:{round_number}".encode()).hexdigest()[:32]
    return f"msg_{digest}"


class DeliveryEvent(BaseModel):
    """One outbound event; its JSON is the request body (type, timestamp, data)."""

    id: str = Field(description="The webhook-id: stable across retries and replays.")
    type: EventType
    timestamp: datetime
    data: dict[str, Any]

    def body(self) -> str:
        return json.dumps(
            {"type": self.type, "timestamp": self.timestamp.isoformat(), "data": self.data},
            ensure_ascii=False,
            separators=(",", ":"),
        )


class DeliveryResult(BaseModel):
    """What became of an event: delivered (with the receiver's status) or skipped."""

    id: str
    type: EventType
    delivered: bool
    status_code: int | None = None
    skipped_reason: str | None = None


class DeliveryRefused(Exception):
    """The receiver refused the event (a 4xx other than 408/429): retrying cannot help."""


class DeliveryFailed(Exception):
    """The receiver could not take the event now (timeout, connection, 5xx): retry later."""


def describe_url(url: str) -> str:
    """The URL without credentials or query, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Deliverer:
    """Signs and POSTs events to one URL."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout_seconds: float = 10,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._webhook = Webhook(secret)
        self._timeout = timeout_seconds
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx2.AsyncClient:
        """One pooled client per event loop, made on first use.

        Making a client costs about 25 ms of CPU (its TLS context), spent on
        the worker's event loop: with a client per delivery, a burst of 100
        replies stalled every task on that worker for seconds. A client is
        bound to the loop it first ran on, so another loop (a test's) gets
        its own.
        """
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx2.AsyncClient(
                timeout=self._timeout, transport=self._transport, follow_redirects=False
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections (the worker does at shutdown)."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

    def headers(
        self, event: DeliveryEvent, body: str, now: datetime | None = None
    ) -> dict[str, str]:
        sent_at = now or datetime.now(tz=UTC)
        return {
            "content-type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": self._webhook.sign(event.id, sent_at, body),
        }

    async def deliver(self, event: DeliveryEvent) -> DeliveryResult:
        body = event.body()
        where = f"{event.type} {event.id} to {describe_url(self.url)}"
        try:
            # The whole exchange within the timeout: the client's own applies to
            # each read, so a helpdesk trickling its answer could hold a slot.
            async with asyncio.timeout(self._timeout):
                status = await self._post(body.encode(), self.headers(event, body))
        except TimeoutError as exc:
            raise DeliveryFailed(f"{where}: no answer within {self._timeout:g} s") from exc
        except httpx2.TransportError as exc:  # refused connections, resets
            raise DeliveryFailed(f"{where}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return DeliveryResult(id=event.id, type=event.type, delivered=True, status_code=status)
        message = f"{where}: HTTP {status}"
        if status >= 500 or status in RETRYABLE_STATUS:
            raise DeliveryFailed(message)
        raise DeliveryRefused(message)

    async def _post(self, content: bytes, headers: dict[str, str]) -> int:
        """POST and return the status.

        The answer's body is never needed: at most ``MAX_ANSWER_BYTES`` of it
        are read (a short one whole, so the connection can be reused).
        """
        async with self._http().stream(
            "POST", self.url, content=content, headers=headers
        ) as answer:
            read = 0
            async for chunk in answer.aiter_raw():  # as sent: never inflated here
                read += len(chunk)
                if read > MAX_ANSWER_BYTES:
                    break  # the rest is dropped with the connection
            return answer.status_code


def skipped(event: DeliveryEvent, reason: str) -> DeliveryResult:
    return DeliveryResult(id=event.id, type=event.type, delivered=False, skipped_reason=reason)
