"""The front door of ``/v1/``: size limit, Standard Webhooks signature, replay protection.

An ASGI middleware, so it runs before routing: an unsigned request learns
nothing (not even whether a path exists), and a body too large is refused
from its Content-Length, or as soon as it streams past the limit. Every
request under ``/v1/``, reads included (a GET signs an empty body), must
carry ``webhook-id``, ``webhook-timestamp`` (within 5 minutes) and a
``webhook-signature`` of ``"{id}.{timestamp}.{body}"`` (HMAC-SHA256 as the
Standard Webhooks reference library computes it, compared in constant time).
The HMAC is computed incrementally while the body streams to a spool file,
so evidence uploads of hundreds of MB are verified in bounded memory; the
route reads the body only after its signature has been checked.
A request that changes something and repeats a ``webhook-id`` gets the first
answer again (``DeliveryLog``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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


SPOOL_IN_MEMORY = 1024 * 1024
REPLAY_CHUNK = 64 * 1024
TOLERANCE_SECONDS = 5 * 60


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


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


class SpooledBody:
    """A request body read once: spooled (memory up to 1 MiB, then a temporary file) and hashed.

    The signature's HMAC and the delivery fingerprint are computed as the
    body streams in, so a 1 GB multipart upload is verified without ever
    being held in memory; the route then reads it again from the spool.
    """

    def __init__(self, mac: hmac.HMAC | None, fingerprint_prefix: bytes) -> None:
        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.size = 0
        self.mac = mac
        self.fingerprint = hashlib.sha256(fingerprint_prefix)

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.file.write(chunk)
        self.fingerprint.update(chunk)
        if self.mac is not None:
            self.mac.update(chunk)

    def replayer(self) -> Receive:
        """An ASGI ``receive`` that hands the spooled body on in chunks, then disconnects."""
        self.file.seek(0)
        done = False

        async def receive() -> Message:
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            chunk = await asyncio.to_thread(self.file.read, REPLAY_CHUNK)
            more = len(chunk) == REPLAY_CHUNK
            if not more:
                done = True
            return {"type": "http.request", "body": chunk, "more_body": more}

        return receive

    def close(self) -> None:
        self.file.close()


async def spool_body(receive: Receive, body: SpooledBody, limit: int) -> None:
    """Read the whole body into ``body``; ``TooLarge`` as soon as it passes ``limit``."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if body.size + len(chunk) > limit:
            raise TooLarge
        if chunk:
            if body.size + len(chunk) > SPOOL_IN_MEMORY:
                await asyncio.to_thread(body.add, chunk)
            else:
                body.add(chunk)
        if not message.get("more_body", False):
            break


def too_large(limit: int, upload_limit: int) -> str:
    """The 413's message; a JSON body that is too large learns where attachments go."""
    if limit < upload_limit:
        return (
            f"the request is larger than {limit} bytes (attachments go in a "
            f"multipart/form-data body, up to {upload_limit} bytes)"
        )
    return f"the request is larger than {limit} bytes"


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret, as the reference library decodes it."""
    raw = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    key = base64.b64decode(raw + "==")
    if not key:
        raise ValueError("webhook secret may not be empty")
    return key


def check_timestamp(value: str, now: float) -> str:
    """The timestamp as signed (whole seconds), or raise ``ValueError`` saying what is wrong."""
    try:
        stamp = float(value)
    except ValueError:
        raise ValueError("Invalid Signature Headers") from None
    if not math.isfinite(stamp):
        raise ValueError("Invalid Signature Headers")
    if stamp < now - TOLERANCE_SECONDS:
        raise ValueError("Message timestamp too old")
    if stamp > now + TOLERANCE_SECONDS:
        raise ValueError("Message timestamp too new")
    return str(math.floor(stamp))


def signature_matches(expected: bytes, header: str) -> bool:
    """Any ``v1,<base64>`` entry of the header equals ``expected`` (constant-time compare)."""
    found = False
    for entry in header.split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1" or not signature:
            continue
        try:
            candidate = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        found = hmac.compare_digest(expected, candidate) or found
    return found


class WebhookGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str | None,
        deliveries: DeliveryLog | None,
        max_body_bytes: int,
        max_other_body_bytes: int,
    ) -> None:
        self.app = app
        # None: --insecure-no-auth, for local trials only.
        self._key = webhook_key(secret) if secret else None
        self._deliveries = deliveries
        self._limit = max_body_bytes
        # Bodies other than multipart uploads (JSON tickets and replies) are
        # parsed whole in memory, so they get a limit of their own.
        self._other_limit = min(max_other_body_bytes, max_body_bytes)

    def _limit_for(self, scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-type" and value.lower().startswith(b"multipart/form-data"):
                return self._limit
        return self._other_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        declared = declared_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            await _json(send, 413, {"error": too_large(limit, self._limit)})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        mac = None
        if self._key is not None:
            # Headers first: an unsigned request is refused before its body is read.
            signed, problem = self._signed_prefix(headers)
            if problem is not None:
                await _json(send, 401, {"error": f"unauthenticated: {problem}"})
                return
            mac = hmac.new(self._key, signed, hashlib.sha256)
        body = SpooledBody(mac, scope["method"].encode() + b" " + scope["path"].encode() + b"\n")
        try:
            try:
                await spool_body(receive, body, limit)
            except TooLarge:
                await _json(send, 413, {"error": too_large(limit, self._limit)})
                return
            if mac is not None and not signature_matches(
                mac.digest(), headers["webhook-signature"]
            ):
                await _json(
                    send,
                    401,
                    {"error": "unauthenticated: bad signature (No matching signature found)"},
                )
                return
            delivery_id = headers.get("webhook-id")
            if scope["method"] in READ_METHODS or self._deliveries is None or not delivery_id:
                await self.app(scope, body.replayer(), send)
                return
            await self._once(scope, body, send, delivery_id)
        finally:
            body.close()

    def _signed_prefix(self, headers: dict[str, str]) -> tuple[bytes, str | None]:
        """``b"{id}.{timestamp}."``, what the HMAC covers before the body; or why not."""
        if not all(headers.get(h) for h in SIGNATURE_HEADERS):
            return b"", "missing webhook-id, webhook-timestamp or webhook-signature"
        try:
            stamp = check_timestamp(headers["webhook-timestamp"], time.time())
        except ValueError as exc:
            return b"", f"bad signature ({exc})"
        return f"{headers['webhook-id']}.{stamp}.".encode(), None

    async def _once(self, scope: Scope, body: SpooledBody, send: Send, delivery_id: str) -> None:
        deliveries = self._deliveries
        assert deliveries is not None
        fingerprint = body.fingerprint.hexdigest()
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
            await self.app(scope, body.replayer(), capture)
        finally:
            status = int(captured["status"])
            if status >= 500:
                deliveries.release(delivery_id)  # our failure: the retry may succeed
            else:
                deliveries.record(delivery_id, Answer(status, b"".join(captured["body"])))
