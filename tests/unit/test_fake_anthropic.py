"""FakeAnthropic, exercised through the real `anthropic` SDK.

The fake is only useful if the real clients cannot tell it from the API in the ways our code
relies on, so every test here goes over HTTP with a real `Anthropic` or `AsyncAnthropic` client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, MessageParam, TextBlockParam, ToolParam

from tests.fake_anthropic import (
    FakeAnthropic,
    FakeResponse,
    delay,
    error,
    message,
    text,
    tool_use,
)

MODEL = "claude-test-model"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as running:
        yield running


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="test-key", max_retries=0) as c:
        yield c


def params(key: str, **extra: Any) -> dict[str, Any]:
    """Minimal request arguments whose user message carries the scripting key."""
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"Ticket {key}: please help"}],
        **extra,
    }


def ask(client: anthropic.Anthropic, key: str, **extra: Any) -> Message:
    reply: Message = client.messages.create(**params(key, **extra))
    return reply


def test_non_streamed_text(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.script("T-1", message(text("All good."), input_tokens=7, cache_read_input_tokens=3))

    reply = ask(client, "T-1")

    assert [b.model_dump(exclude_none=True) for b in reply.content] == [
        {"type": "text", "text": "All good."}
    ]
    assert reply.model == MODEL and reply.role == "assistant" and reply.stop_reason == "end_turn"
    assert reply.id.startswith("msg_") and (reply._request_id or "").startswith("req_")
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (7, 50)
    assert reply.usage.cache_read_input_tokens == 3
    assert fake.pending("T-1") == 0


async def test_non_streamed_tool_use_async(fake: FakeAnthropic) -> None:
    block = tool_use("run_python", {"code": "print(1)", "files": ["a.csv"]})
    fake.script("T-2", message(text("Let me check."), block))

    async with fake.async_client() as aclient:
        reply = await aclient.messages.create(**params("T-2"))

    assert reply.stop_reason == "tool_use"
    call = reply.content[1]
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == (block["id"], "run_python", block["input"])
    assert call.id.startswith("toolu_")


def test_streamed_text_matches_non_streamed(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    answer = "The disk is full; rotate the logs and restart the service."
    fake.script("T-3", message(text(answer)), message(text(answer)))

    with client.messages.stream(**params("T-3")) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
    plain = ask(client, "T-3")

    assert len(chunks) >= 3 and "".join(chunks) == answer
    assert final.content[0].model_dump() == plain.content[0].model_dump()
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", 50)
    assert [r.streamed for r in fake.requests_for("T-3")] == [True, False]


async def test_streamed_tool_use_has_parsed_input(fake: FakeAnthropic) -> None:
    tool_input = {"code": "import os\nprint(os.listdir('.'))", "timeout": 30, "nested": {"a": [1]}}
    fake.script("T-4", message(text("Running it."), tool_use("run_python", tool_input)))

    async with fake.async_client() as aclient, aclient.messages.stream(**params("T-4")) as stream:
        final = await stream.get_final_message()

    call = final.content[1]
    assert call.type == "tool_use" and call.input == tool_input
    assert final.stop_reason == "tool_use"


def test_create_stream_true_sends_the_real_event_sequence(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.script("T-5", message(text("abc def"), tool_use("t", {"x": 1})))

    events = list(client.messages.create(**params("T-5"), stream=True))

    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 2
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert {d.type for d in deltas} == {"text_delta", "input_json_delta"}
    json_parts = "".join(d.partial_json for d in deltas if d.type == "input_json_delta")
    assert json_parts == '{"x": 1}'


def test_keys_are_independent_fifo_queues_under_concurrency(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    keys = [f"K-{n}" for n in range(6)]
    for key in keys:
        fake.script(key, *(message(text(f"{key} reply {i}")) for i in range(4)))

    def converse(key: str) -> list[str]:
        replies = [ask(client, key).content[0] for _ in range(4)]
        return [b.text for b in replies if b.type == "text"]

    with ThreadPoolExecutor(len(keys)) as pool:
        results = dict(zip(keys, pool.map(converse, keys), strict=True))

    assert results == {k: [f"{k} reply {i}" for i in range(4)] for k in keys}
    assert all(fake.pending(k) == 0 for k in keys) and len(fake.requests) == 24
    assert all(len(fake.requests_for(k)) == 4 for k in keys)


def test_longest_matching_key_wins_and_responder_is_the_fallback(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.script("T-1", message(text("short")))
    fake.script("T-12", message(text("long")))
    fake.responder = lambda body: message(text(f"instant for {body['model']}"))

    texts = [ask(client, key).content[0] for key in ("T-12", "T-1", "T-1")]

    assert [b.text for b in texts if b.type == "text"] == ["long", "short", f"instant for {MODEL}"]
    assert [r.matched_key for r in fake.requests] == ["T-12", "T-1", None]


def test_records_system_tools_and_cache_control_exactly(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    system: list[TextBlockParam] = [
        {
            "type": "text",
            "text": "You are a support agent.",
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": "<ticket id='T-6'>disk full</ticket>"},
    ]
    tools: list[ToolParam] = [
        {
            "name": "run_python",
            "description": "Run code in a sandbox.",
            "input_schema": {"type": "object", "properties": {"code": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        }
    ]
    messages: list[MessageParam] = [
        {"role": "user", "content": [{"type": "text", "text": "<untrusted>hi</untrusted>"}]},
    ]
    fake.script("T-6", message(text("ok")))

    client.messages.create(
        model=MODEL, max_tokens=64, system=system, tools=tools, messages=messages
    )

    (recorded,) = fake.requests_for("T-6")
    assert recorded.body["system"] == system
    assert recorded.body["tools"] == tools
    assert recorded.body["messages"] == messages
    assert recorded.path == "/v1/messages" and not recorded.streamed
    assert recorded.api_key == "test-key"
    assert "anthropic-version" in recorded.headers


@pytest.mark.parametrize(
    ("status", "kind", "exc_type"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.InternalServerError),
    ],
)
def test_errors_raise_the_matching_sdk_exception(
    fake: FakeAnthropic,
    client: anthropic.Anthropic,
    status: int,
    kind: str,
    exc_type: type[anthropic.APIStatusError],
) -> None:
    fake.script("T-7", error(status, kind, "scripted failure", retry_after=0.01))

    with pytest.raises(exc_type) as caught:
        ask(client, "T-7")

    assert caught.value.status_code == status
    assert caught.value.body == {
        "type": "error",
        "error": {"type": kind, "message": "scripted failure"},
        "request_id": caught.value.body["request_id"],  # type: ignore[index]
    }
    assert caught.value.response.headers["retry-after"] == "0.01"


def test_streamed_request_gets_a_plain_error_before_the_stream(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.script("T-8", error(529, "overloaded_error"))

    with pytest.raises(anthropic.InternalServerError), client.messages.stream(**params("T-8")):
        pass


def test_retry_after_is_honoured(fake: FakeAnthropic) -> None:
    fake.script(
        "T-9",
        error(429, "rate_limit_error", retry_after=0.01),
        error(529, "overloaded_error", retry_after=0.01),
        message(text("ok")),
    )

    started = time.monotonic()
    with fake.client(max_retries=2) as retrying:
        reply = ask(retrying, "T-9")
    elapsed = time.monotonic() - started

    assert reply.content[0].type == "text" and reply.content[0].text == "ok"
    # The SDK's own backoff starts at 0.5 s per retry (minus up to 25% jitter); finishing two
    # retries well under that proves it waited for the fake's retry-after instead.
    assert elapsed < 0.35
    sent = fake.requests_for("T-9")
    assert [r.status for r in sent] == [429, 529, 200]
    assert [r.headers["x-stainless-retry-count"] for r in sent] == ["0", "1", "2"]


def test_unmatched_request_is_a_readable_500_that_is_not_retried(fake: FakeAnthropic) -> None:
    fake.script("T-10", message(text("only one")))

    with fake.client(max_retries=2) as retrying:
        ask(retrying, "T-10")
        with pytest.raises(anthropic.InternalServerError) as caught:
            ask(retrying, "T-10")

    assert caught.value.status_code == 500
    assert "no scripted response matches" in str(caught.value)
    assert "'T-10' (0 left)" in str(caught.value)
    assert "Ticket T-10" in str(caught.value)
    assert [r.status for r in fake.requests] == [200, 500]  # recorded, and not retried


def test_a_failing_responder_is_reported_not_hidden(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    def broken(body: dict[str, Any]) -> FakeResponse:
        raise KeyError("oops")

    fake.responder = broken

    with pytest.raises(anthropic.InternalServerError, match="responder raised KeyError"):
        ask(client, "T-11")


def test_delay_trips_the_client_timeout_and_stop_is_prompt(fake: FakeAnthropic) -> None:
    fake.script("T-13", delay(10, message(text("too late"))))

    with fake.client(timeout=0.2) as impatient, pytest.raises(anthropic.APITimeoutError):
        ask(impatient, "T-13")

    started = time.monotonic()
    fake.stop()  # must cut the pending 10 s delay short
    assert time.monotonic() - started < 1


def test_count_tokens_and_beta_query_string(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.script("T-14", message(text("beta ok")))

    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 400 + " T-14"}]
    )
    # Some SDK versions add `?beta=true` to beta calls; the fake must route by path alone.
    reply = client.beta.messages.create(**params("T-14"), extra_query={"beta": "true"})

    assert 90 <= counted.input_tokens <= 110
    assert reply.content[0].type == "text"
    count_req, beta_req = fake.requests_for("T-14")
    assert count_req.path == "/v1/messages/count_tokens"
    assert (beta_req.path, beta_req.query) == ("/v1/messages", "beta=true")
    assert fake.pending("T-14") == 0  # count_tokens does not consume scripted replies


def test_sdk_default_client_finds_the_fake_through_env(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker subprocess started with `env=fake.env()` gets: a client with no arguments."""
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    fake.script("T-15", message(text("from the fake")))

    with anthropic.Anthropic(max_retries=0) as default_client:
        reply = ask(default_client, "T-15")

    assert reply.content[0].type == "text" and reply.content[0].text == "from the fake"
    assert fake.requests_for("T-15")[0].api_key == "test-key"


def test_other_processes_can_call_while_the_test_process_does(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    # The child uses plain urllib: importing the SDK would cost over a second per process, and
    # the SDK's side is covered above; this proves cross-process interleaving only.
    child = (
        "import json, os, urllib.request\n"
        "for n in range(5):\n"
        "    body = {'model': 'm', 'max_tokens': 8, 'stream': False,\n"
        "            'messages': [{'role': 'user', 'content': 'T-16-child'}]}\n"
        "    req = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages',\n"
        "        data=json.dumps(body).encode(), headers={'content-type': 'application/json'})\n"
        "    print(json.load(urllib.request.urlopen(req))['content'][0]['text'])\n"
    )
    fake.script("T-16-child", *(message(text(f"child {n}")) for n in range(5)))
    fake.script("T-16-parent", *(message(text(f"parent {n}")) for n in range(5)))

    with subprocess.Popen(
        [sys.executable, "-c", child],
        env={**os.environ, **fake.env()},
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        parent = [ask(client, "T-16-parent").content[0] for _ in range(5)]
        out, _ = proc.communicate(timeout=30)

    assert [b.text for b in parent if b.type == "text"] == [f"parent {n}" for n in range(5)]
    assert out.split("\n")[:5] == [f"child {n}" for n in range(5)]
    assert proc.returncode == 0 and fake.pending("T-16-child") == fake.pending("T-16-parent") == 0


def test_a_stopped_fake_hangs_up_on_pooled_connections(
    fake: FakeAnthropic, client: anthropic.Anthropic
) -> None:
    fake.responder = lambda body: message(text("alive"))
    ask(client, "T-17")  # leaves a keep-alive connection in the client's pool

    fake.stop()

    with pytest.raises(anthropic.APIConnectionError):
        ask(client, "T-17")
