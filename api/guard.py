"""The front door of ``/v1/``: size limit, Standard Webhooks signature, replay protection.

An ASGI middleware, so it runs before routing: an unsigned request learns
nothing (not even whether a path exists), and a body too large is refused
from its Content-Length, or as soon as it streams past the limit, without
being read whole. Every request under ``/v1/``, reads included (a GET signs
an empty body), must carry ``webhook-id``, ``webhook-timestamp`` (within
5 minutes) and a ``webhook-signature`` of ``"{id}.{timestamp}.{body}"``
(HMAC-SHA256, compared in constant time by the reference library).
A request that changes something and repeats a ``webhook-id`` gets the first
answer again (``DeliveryLog``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from standardwebhooks import Webhook

from api.deliveries import Answer, DeliveryLog

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROTECTED = "/v1/"
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger("support_agent.api")


class TooLarge(Exception):
    pass


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    await _raw(send, Answer(status, json.dumps(payload).encode()))


async def _raw(send: Send, answer: Answer) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(answer.body)),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused (``TooLarge``) before reading past ``limit`` bytes."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = limit + 1
            if declared > limit:
                raise TooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class WebhookGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str | None,
        deliveries: DeliveryLog | None,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        # None: --insecure-no-auth, for local trials only.
        self._webhook = Webhook(secret) if secret else None
        self._deliveries = deliveries
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, self._limit)
        except TooLarge:
            await _json(send, 413, {"error": f"the request is larger than {self._limit} bytes"})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self._webhook is not None:
            problem = self._verify(body, headers)
            if problem is not None:
                await _json(send, 401, {"error": f"unauthenticated: {problem}"})
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        delivery_id = headers.get("webhook-id")
        if scope["method"] in READ_METHODS or self._deliveries is None or not delivery_id:
            await self.app(scope, replay, send)
            return
        await self._once(scope, replay, send, delivery_id, body)

    def _verify(self, body: bytes, headers: dict[str, str]) -> str | None:
        assert self._webhook is not None
        if not all(headers.get(h) for h in SIGNATURE_HEADERS):
            return "missing webhook-id, webhook-timestamp or webhook-signature"
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except Exception as exc:  # any malformed header is a failed verification
            reason = str(exc) if type(exc).__name__ == "WebhookVerificationError" else "malformed"
            return f"bad signature ({reason})"
        return None

    async def _once(
        self, scope: Scope, receive: Receive, send: Send, delivery_id: str, body: bytes
    ) -> None:
        deliveries = self._deliveries
        assert deliveries is not None
        fingerprint = hashlib.sha256(
            scope["method"].encode() + b" " + scope["path"].encode() + b"\n" + body
        ).hexdigest()
        while not deliveries.claim(delivery_id, fingerprint):
            first, answer = await deliveries.answer(delivery_id)
            if first and first != fingerprint:
                await _json(send, 409, {"error": "webhook-id already used for another request"})
                return
            if answer is not None:
                await _raw(send, answer)
                return
            if first:  # still running after the wait
                await _json(send, 409, {"error": "a delivery with this webhook-id is in progress"})
                return
        captured: dict[str, Any] = {"status": 500, "body": []}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            status = int(captured["status"])
            if status >= 500:
                deliveries.release(delivery_id)  # our failure: the retry may succeed
            else:
                deliveries.record(delivery_id, Answer(status, b"".join(captured["body"])))
