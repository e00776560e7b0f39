"""Standard Webhooks on the test side: a signing client and a verifying receiver.

Both use the reference library, independently of the code under test's own
use of it, and the receiver is a real HTTP server on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signed_headers(
    secret: str,
    body: bytes = b"",
    *,
    msg_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    sent_at = at or datetime.now(tz=UTC)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    try:
        signature = Webhook(secret).sign(msg_id, sent_at, body.decode())
    except UnicodeDecodeError:  # binary (multipart) bodies: the same HMAC over the raw bytes
        key = base64.b64decode(secret.removeprefix("whsec_") + "==")
        signed = f"{msg_id}.{int(sent_at.timestamp())}.".encode() + body
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }


def multipart(
    fields: dict[str, str], files: list[tuple[str, bytes]], name: str = "attachments"
) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type, as a helpdesk would upload a ticket."""
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for filename, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Receiver:
    """A helpdesk's webhook endpoint: verifies each event, dedupes on webhook-id.

    ``fail_first`` answers that many deliveries with a 503 before accepting,
    so Hatchet's retries are exercised.
    """

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.events: dict[str, dict[str, Any]] = {}
        self.attempts: list[str] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.take(body, dict(self.headers.items()))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/support-agent"

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            Webhook(self.secret).verify(body, headers)
        except Exception as exc:
            with self._lock:
                self.rejected.append(str(exc))
            return 401
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self._lock:
            self.attempts.append(msg_id)
            if self.fail_first > 0:
                self.fail_first -= 1
                return 503
            self.events.setdefault(msg_id, json.loads(body))
        return 204

    def of_ticket(self, ticket_id: str) -> list[dict[str, Any]]:
        with self._lock:
            events = list(self.events.values())
        return [e for e in events if e["data"].get("ticket_id") == ticket_id]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class TimedReceiver(Receiver):
    """A receiver noting when each ticket's first event of each type arrived (monotonic)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.first: dict[tuple[str, str], float] = {}
        self._times_lock = threading.Lock()

    def take(self, body: bytes, headers: dict[str, str]) -> int:
        status = super().take(body, headers)
        if status < 300:
            event = json.loads(body)
            key = (event["type"], str(event["data"].get("ticket_id")))
            with self._times_lock:
                self.first.setdefault(key, time.monotonic())
        return status

    def count(self, kind: str, ticket_ids: Iterable[str]) -> int:
        with self._times_lock:
            return sum((kind, t) in self.first for t in ticket_ids)

    def at(self, kind: str, ticket_id: str) -> float | None:
        with self._times_lock:
            return self.first.get((kind, ticket_id))
