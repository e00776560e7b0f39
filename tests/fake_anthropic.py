"""A local fake of the Anthropic Messages API for tests and benchmarks.

Why a server and not a mock: the code under test builds real `anthropic` clients (sometimes in
worker subprocesses), so the most faithful seam is the HTTP boundary. The real SDK then does its
own request building, retries, error mapping and SSE parsing against this fake, and tests assert
on exactly what went over the wire (prompts, tools, `cache_control` markers, fencing).

Usage::

    with FakeAnthropic() as fake:
        fake.script("TICKET-1", message(tool_use("run", {"code": "1"})), message(text("done")))
        client = fake.client()  # or anthropic.Anthropic(base_url=fake.base_url, ...)
        ...
        assert fake.requests_for("TICKET-1")[0].body["system"] == ...

Only loopback is used; nothing here ever talks to the real API.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import anthropic

__all__ = [
    "FakeAnthropic",
    "FakeResponse",
    "RecordedRequest",
    "delay",
    "error",
    "message",
    "text",
    "tool_use",
]

Block = dict[str, Any]

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

# Streamed text and tool JSON are cut into about three deltas so tests see several chunks, but
# no delta is longer than this, so long texts stream in many small pieces as the real API does.
_MAX_DELTA_CHARS = 32


@dataclass(frozen=True)
class FakeResponse:
    """One scripted reply. Build it with `message`, `error` and `delay` rather than by hand.

    `body` for a successful message holds everything but `id` and `model`, which are filled in
    per request (a fresh id, the model echoed) so one script can answer any model name.
    """

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    # A streamed message that breaks off after its start with this error event (its body),
    # as the real API reports an overload that hits a stream already answered 200.
    stream_error: dict[str, Any] | None = None

    @property
    def is_message(self) -> bool:
        return self.status == 200 and self.body.get("type") == "message"


# Fallback for unscripted requests (benchmarks answer everything at once this way). It runs on
# server threads, so it must be thread-safe.
Responder = Callable[[dict[str, Any]], FakeResponse]


@dataclass
class RecordedRequest:
    """What the client sent, as the server saw it.

    `headers` keys are lower-cased (HTTP headers are case-insensitive). `path` excludes the query
    string, which is kept in `query` (the SDK may add e.g. `?beta=true`). `status` and
    `matched_key` say how the fake answered, which makes failing tests easier to read.
    """

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    streamed: bool
    query: str = ""
    status: int = 200
    matched_key: str | None = None

    @property
    def text(self) -> str:
        """All strings in the system prompt and messages, the text that `script` keys match."""
        return _searchable_text(self.body)

    @property
    def api_key(self) -> str | None:
        """The key the client sent: SDK versions differ (`x-api-key` or a Bearer token)."""
        bearer = self.headers.get("authorization", "")
        return self.headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None


# --------------------------------------------------------------------------- response builders


def text(s: str) -> Block:
    """A text content block."""
    return {"type": "text", "text": s}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> Block:
    """A tool_use content block. The id is fixed when the block is built (not when served), so a
    test can refer to it in the `tool_result` it expects the client to send back."""
    return {"type": "tool_use", "id": id or _new_id("toolu_"), "name": name, "input": input}


def message(
    *blocks: Block,
    stop_reason: str | None = None,
    input_tokens: int = 100,
    output_tokens: int = 50,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
) -> FakeResponse:
    """A successful assistant message; stop_reason defaults as the real API would set it."""
    if stop_reason is None:
        stop_reason = "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn"
    return FakeResponse(
        status=200,
        body={
            "type": "message",
            "role": "assistant",
            "content": list(blocks),
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": cache_creation_input_tokens,
                "cache_read_input_tokens": cache_read_input_tokens,
            },
        },
    )


def error(
    status: int, type: str, message: str | None = None, retry_after: float | None = None
) -> FakeResponse:
    """An API error in the real shape, e.g. `error(429, "rate_limit_error", retry_after=0.01)`.

    The SDK honours `retry-after` (floats included), so a small value keeps retry tests fast.
    """
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    detail = message if message is not None else f"fake {type} (HTTP {status})"
    return FakeResponse(status=status, body=_error_body(type, detail), headers=headers)


def broken_stream(type: str, detail: str | None = None) -> FakeResponse:
    """A streamed answer that starts (HTTP 200, message_start) and then fails with an error event.

    Non-streamed requests get the message whole: the real API only fails this way mid-stream.
    """
    body = _error_body(type, detail if detail is not None else f"fake {type} (mid-stream)")
    return replace(message(text("partial")), stream_error=body)


def delay(seconds: float, response: FakeResponse) -> FakeResponse:
    """The same response, sent only after a pause (to trip client timeouts). Pauses add up."""
    return replace(response, delay_seconds=response.delay_seconds + seconds)


def _error_body(type: str, detail: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": type, "message": detail},
        "request_id": _new_id("req_"),
    }


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------------- the server


class FakeAnthropic:
    """Context manager: `with FakeAnthropic() as fake: ...` starts/stops the server.

    Thread-safe: requests are served on server threads (and may come from other processes), while
    the test thread scripts responses and reads `requests`; one lock guards both.
    """

    def __init__(self) -> None:
        self.responder: Responder | None = None
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[FakeResponse]] = {}
        self._lock = threading.Lock()
        # Set on stop so pending `delay`s end at once instead of holding threads open.
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeAnthropic:
        if self._server is not None:
            raise RuntimeError("FakeAnthropic is already running")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},  # stop() waits up to this long
            name="fake-anthropic",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:PORT"; only while running (the port is chosen at start)."""
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not running; call start() or use `with`")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self, api_key: str = "test-key") -> dict[str, str]:
        """Environment for a worker subprocess, so its own default client lands here."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": api_key}

    def client(self, *, max_retries: int = 0, **kwargs: Any) -> anthropic.Anthropic:
        """A real sync client pointed here. No retries by default so failures surface at once."""
        return anthropic.Anthropic(
            base_url=self.base_url, api_key="test-key", max_retries=max_retries, **kwargs
        )

    def async_client(self, *, max_retries: int = 0, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """A real async client pointed here; see `client`."""
        return anthropic.AsyncAnthropic(
            base_url=self.base_url, api_key="test-key", max_retries=max_retries, **kwargs
        )

    # -- scripting and inspection

    def script(self, key: str, *responses: FakeResponse) -> None:
        """Queue responses for requests whose system prompt or messages contain `key`.

        Each matching request pops the next response (FIFO); calling again appends. When a
        request contains several scripted keys, the longest one with responses left wins, so a
        key that is a prefix of another ("T-1" / "T-12") does not steal its replies.
        """
        if not key:
            raise ValueError("an empty key would match every request")
        with self._lock:
            self._scripts.setdefault(key, deque()).extend(responses)

    def requests_for(self, key: str) -> list[RecordedRequest]:
        """Every recorded request (any path) whose system prompt or messages contain `key`."""
        with self._lock:
            snapshot = list(self.requests)
        return [r for r in snapshot if key in r.text]

    def pending(self, key: str) -> int:
        """Scripted responses for `key` not consumed yet."""
        with self._lock:
            return len(self._scripts.get(key, ()))

    # -- request handling (called on server threads)

    def _answer(
        self, path: str, query: str, headers: dict[str, str], raw: bytes
    ) -> tuple[FakeResponse, bool, str]:
        """Choose the reply to one request and record it; returns (reply, streamed, model).

        Choosing and recording happen under one lock so `requests` order is the order in which
        scripted responses were consumed.
        """
        try:
            parsed = json.loads(raw or b"{}")
            body: dict[str, Any] = parsed if isinstance(parsed, dict) else {"_raw": parsed}
            bad_json = None if isinstance(parsed, dict) else "request body must be a JSON object"
        except ValueError as exc:
            body, bad_json = {"_raw": raw.decode("utf-8", "replace")}, f"invalid JSON: {exc}"
        streamed = body.get("stream") is True
        record = RecordedRequest(path, headers, body, streamed, query=query)
        haystack = record.text  # built before taking the lock, which every request contends for
        reply: FakeResponse | None
        with self._lock:
            if bad_json is not None:
                reply = error(400, "invalid_request_error", bad_json)
            elif path == COUNT_TOKENS_PATH:
                reply = FakeResponse(200, {"input_tokens": _rough_token_count(body)})
            elif path == MESSAGES_PATH:
                record.matched_key, reply = self._pop_scripted(haystack)
            else:
                reply = error(404, "not_found_error", f"FakeAnthropic does not serve {path}")
            self.requests.append(record)
            responder = self.responder
        if reply is None:
            # Called outside the lock: a slow responder must not serialise unrelated requests.
            reply = self._respond(responder, body, haystack)
        record.status = reply.status
        return reply, streamed, str(body.get("model", "claude-fake"))

    def _pop_scripted(self, haystack: str) -> tuple[str | None, FakeResponse | None]:
        """The key and reply scripted for a request, or (None, None) if none is (lock held)."""
        candidates = [k for k, q in self._scripts.items() if q and k in haystack]
        if not candidates:
            return None, None
        key = max(candidates, key=len)
        return key, self._scripts[key].popleft()

    def _respond(
        self, responder: Responder | None, body: dict[str, Any], haystack: str
    ) -> FakeResponse:
        """The fallback for unscripted requests: the responder's answer, else a readable 500."""
        if responder is None:
            with self._lock:
                scripted = ", ".join(f"{k!r} ({len(q)} left)" for k, q in self._scripts.items())
            detail = (
                "FakeAnthropic: no scripted response matches this request and no responder is "
                f"set. Scripted keys: {scripted or 'none'}. Request text begins: {haystack[:300]!r}"
            )
            return _no_retry(error(500, "api_error", detail))
        try:
            return responder(body)
        except Exception as exc:
            # Report the bug in the test's responder to the client rather than drop the socket.
            return _no_retry(error(500, "api_error", f"FakeAnthropic responder raised {exc!r}"))

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _no_retry(response: FakeResponse) -> FakeResponse:
    """Mark a fake-side failure as final: the SDK obeys `x-should-retry`, so a mis-scripted test
    fails at once instead of retrying with backoff (and recording the same request thrice)."""
    return replace(response, headers={**response.headers, "x-should-retry": "false"})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _searchable_text(body: dict[str, Any]) -> str:
    # Every string of the system prompt and of each message's content, not a JSON dump: a dump
    # would escape quotes and non-ASCII text and so miss keys a test wrote plainly. Roles and
    # tool definitions are left out so that a key cannot match them by accident.
    messages = body.get("messages")
    contents = (
        [m.get("content") for m in messages if isinstance(m, dict)]
        if isinstance(messages, list)
        else []
    )
    return "\n".join(_strings([body.get("system"), contents]))


def _rough_token_count(body: dict[str, Any]) -> int:
    # About four characters a token, the usual rule of thumb; tests only need a plausible number.
    chars = sum(
        len(s) for s in _strings([body.get("system"), body.get("messages"), body.get("tools")])
    )
    return max(1, math.ceil(chars / 4))


# ------------------------------------------------------------------------------ wire format


def _full_message(response: FakeResponse, model: str) -> dict[str, Any]:
    """The message object as the API returns it, with the id first as in the real API."""
    body = response.body
    return {"id": body.get("id") or _new_id("msg_"), **body, "model": body.get("model") or model}


def _pieces(s: str) -> list[str]:
    if not s:
        return []
    size = max(1, min(_MAX_DELTA_CHARS, math.ceil(len(s) / 3)))
    return [s[i : i + size] for i in range(0, len(s), size)]


def _sse_events(msg: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The event sequence of a streamed message, in the order the real API sends them."""
    usage = msg["usage"]
    # message_start carries input usage and a token of output, as the real API does; the final
    # output count arrives in message_delta, so the SDK's accumulated message matches the
    # non-streamed one exactly.
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(msg["content"]):
        kind = block.get("type")
        if kind == "text":
            opening: Block = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif kind == "tool_use":
            opening = {**block, "input": {}}
            args = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(args)]
        else:
            # Any other block (thinking, server tools...) is sent whole in its start event.
            opening, deltas = block, []
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": opening,
            },
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


class _Server(ThreadingHTTPServer):
    fake: FakeAnthropic
    # Benchmarks open many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 128
    # Idle keep-alive connections must not make stop() wait for clients to hang up.
    block_on_close = False
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected (see `delay`): stay quiet about it.
        # Anything else is a bug in the fake, and its traceback is worth the noise.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive (the SDK pools them), and lets SSE use chunked encoding.
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes; without this, Nagle plus delayed ACKs would add
    # ~40 ms to every request on Linux.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: no per-request lines on stderr

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply, streamed, model = fake._answer(url.path, url.query, headers, raw)
        fake._wait(reply.delay_seconds)
        if fake._stopping.is_set():
            # A stopped server answers nothing: hang up, as a dead API host would. This covers
            # delays cut short by stop() and pooled keep-alive connections used after it.
            self.close_connection = True
            return
        try:
            if reply.is_message and streamed:
                self._send_stream(reply, _full_message(reply, model))
            else:
                payload = _full_message(reply, model) if reply.is_message else reply.body
                self._send_json(reply, payload)
        except ConnectionError:
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _start(self, reply: FakeResponse, content_type: str, extra: Mapping[str, str]) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", content_type)
        self.send_header("request-id", _new_id("req_"))
        for name, value in {**reply.headers, **extra}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_json(self, reply: FakeResponse, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self._start(reply, "application/json", {"content-length": str(len(data))})
        self.wfile.write(data)

    def _send_stream(self, reply: FakeResponse, msg: dict[str, Any]) -> None:
        # Chunked, one event a chunk, so the client parses events as they arrive, as it would
        # from the real API, while the connection stays reusable.
        self._start(
            reply,
            "text/event-stream; charset=utf-8",
            {"transfer-encoding": "chunked", "cache-control": "no-cache"},
        )
        events = _sse_events(msg)
        if reply.stream_error is not None:
            events = iter([next(events), ("error", reply.stream_error)])
        for event, data in events:
            chunk = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
