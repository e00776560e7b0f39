"""The outbound webhook client: signing, what is retried, and its pooled client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from workflows.delivery import (
    Deliverer,
    DeliveryEvent,
    DeliveryFailed,
    DeliveryRefused,
    event_id,
)
from workflows.deps import choose_deliverer
from workflows.settings import ConfigurationError, Settings

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "http://helpdesk.test/hooks"


def _event(round_number: int = 1) -> DeliveryEvent:
    return DeliveryEvent(
        id=event_id("run-1", "ticket.replied", round_number),
        type="ticket.replied",
        timestamp=datetime(2026, 1, 2, tzinfo=UTC),
        data={"ticket_id": "T-1", "message": "Hello"},
    )


class Recorder:
    """A transport answering with a fixed status, keeping each request."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        # A streamed body, as from a socket (one given whole is read at once).
        return httpx2.Response(self.status, stream=_Body())


class _Body(httpx2.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"{}"


def _deliverer(recorder: Recorder) -> Deliverer:
    return Deliverer(URL, SECRET, transport=httpx2.MockTransport(recorder))


def test_delivered_events_are_signed_so_the_receiver_can_verify_them() -> None:
    recorder = Recorder(204)
    deliverer = _deliverer(recorder)
    result = asyncio.run(deliverer.deliver(_event()))
    assert result.delivered and result.status_code == 204
    request = recorder.requests[0]
    payload = Webhook(SECRET).verify(request.content, dict(request.headers))
    assert payload["data"]["ticket_id"] == "T-1"
    assert request.headers["webhook-id"] == _event().id


@pytest.mark.parametrize(("status", "error"), [(503, DeliveryFailed), (429, DeliveryFailed)])
def test_server_errors_and_throttling_are_retryable(status: int, error: type) -> None:
    with pytest.raises(error, match=f"HTTP {status}"):
        asyncio.run(_deliverer(Recorder(status)).deliver(_event()))


def test_a_refusal_is_final() -> None:
    with pytest.raises(DeliveryRefused, match="HTTP 400"):
        asyncio.run(_deliverer(Recorder(400)).deliver(_event()))


class CountingTransport(httpx2.MockTransport):
    """Counts how often a client closed it: once per client made and closed."""

    closed = 0

    async def aclose(self) -> None:
        self.closed += 1
        await super().aclose()


def test_one_client_serves_every_delivery_on_a_loop() -> None:
    recorder = Recorder(204)
    transport = CountingTransport(recorder)
    deliverer = Deliverer(URL, SECRET, transport=transport)

    async def burst() -> int:
        await asyncio.gather(*(deliverer.deliver(_event(i)) for i in range(20)))
        await deliverer.deliver(_event(99))
        open_during_deliveries = transport.closed
        await deliverer.aclose()
        return open_during_deliveries

    # A client made per delivery would have been closed after each of the 21.
    assert asyncio.run(burst()) == 0
    assert transport.closed == 1
    assert len(recorder.requests) == 21


def test_each_event_loop_gets_a_working_client_and_close_is_safe() -> None:
    recorder = Recorder(204)
    deliverer = _deliverer(recorder)
    # A client bound to a closed loop must not be reused by the next one.
    for _ in range(2):
        assert asyncio.run(deliverer.deliver(_event())).delivered

    async def deliver_then_close() -> None:
        await deliverer.deliver(_event())
        await deliverer.aclose()
        await deliverer.aclose()  # twice is fine
        await deliverer.deliver(_event())  # a fresh client after closing

    asyncio.run(deliver_then_close())
    assert len(recorder.requests) == 4


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("https://desk.example.com/hook", "whsec_AA==", "has a 1-byte key; at least 24"),
        ("https://desk.example.com/hook", "not base64!", "not a valid whsec_<base64> secret"),
        ("desk.example.com/hook", SECRET, "must be an http:// or https:// URL with a host"),
        ("ftp://desk.example.com/hook", SECRET, "must be an http:// or https:// URL"),
        ("https://desk.example.com:70000/hook", SECRET, "a port from 1 to 65535"),
    ],
)
def test_a_delivery_that_can_never_work_is_refused_at_start(
    url: str, secret: str, message: str
) -> None:
    """Said once when the worker starts, not retried at every reply."""
    settings = Settings(delivery_url=url, delivery_secret=SecretStr(secret))
    with pytest.raises(ConfigurationError, match=message) as refused:
        choose_deliverer(settings)
    assert secret not in str(refused.value)


class _Helpdesk(BaseHTTPRequestHandler):
    """A helpdesk on 127.0.0.1 whose 200 comes with a huge body, or one trickled."""

    written = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", str(BIG))
        self.end_headers()
        chunk = b"x" * 65536 if self.path == "/big" else b"x"
        try:
            while type(self).written < BIG:
                self.wfile.write(chunk)
                type(self).written += len(chunk)
                if self.path == "/slow":
                    time.sleep(0.2)
        except OSError:
            pass  # the deliverer hung up: what these tests want


BIG = 200 * 1024 * 1024


@pytest.fixture
def helpdesk() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Helpdesk)
    _Helpdesk.written = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_an_answers_body_is_not_read_past_a_little(helpdesk: str) -> None:
    """Only the status matters: a 200 MB answer is neither read nor held."""
    result = asyncio.run(Deliverer(f"{helpdesk}/big", SECRET).deliver(_event()))
    assert result.delivered and result.status_code == 200
    assert _Helpdesk.written < BIG // 4  # it stopped writing when we hung up


def test_an_answer_trickled_slower_than_the_timeout_fails_the_attempt(helpdesk: str) -> None:
    """The timeout bounds the whole exchange, not each read (one byte every 0.2 s)."""
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="no answer within 1 s"):
        asyncio.run(Deliverer(f"{helpdesk}/slow", SECRET, timeout_seconds=1).deliver(_event()))
    assert time.monotonic() - started < 5
