"""How Claude's refusals become retryable or final, through the real SDK and the fake API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest
import pytest_asyncio

from agent.anthropic_llm import AnthropicLLM
from agent.llm import LLMError
from tests.conftest import turn_request
from tests.fake_anthropic import FakeAnthropic, FakeResponse, broken_stream, error, message, text

REQUEST = turn_request(
    customer="dana@example.com",
    system="You diagnose support tickets.",
    messages=[{"role": "user", "content": "Ticket T-1: the export fails."}],
)


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[tuple[FakeAnthropic, AnthropicLLM]]:
    with FakeAnthropic() as fake:
        # Retries are the workflow engine's: the worker's client makes none of its own.
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="k", max_retries=0)
        async with client:
            yield fake, AnthropicLLM(client)


@pytest.mark.parametrize(
    ("answer", "retryable", "said"),
    [
        # An overload that hits a stream already answered 200 arrives as an error event.
        (broken_stream("overloaded_error"), True, "during the answer (overloaded_error)"),
        (broken_stream("api_error"), True, "during the answer (api_error)"),
        (broken_stream("invalid_request_error"), False, "during the answer"),
        (error(529, "overloaded_error"), True, "Claude API error 529"),
        (error(429, "rate_limit_error"), True, "Claude API error 429"),
        (error(400, "invalid_request_error"), False, "Claude API error 400"),
        (error(401, "authentication_error"), False, "Claude API error 401"),
    ],
)
async def test_a_refusal_is_retryable_only_when_waiting_can_help(
    llm: tuple[FakeAnthropic, AnthropicLLM], answer: FakeResponse, retryable: bool, said: str
) -> None:
    fake, claude = llm
    fake.responder = lambda _: answer
    with pytest.raises(LLMError) as caught:
        await claude.complete(REQUEST)
    assert caught.value.retryable is retryable
    assert said in str(caught.value)


async def test_an_unbroken_stream_is_the_turn(llm: tuple[FakeAnthropic, AnthropicLLM]) -> None:
    fake, claude = llm
    fake.responder = lambda _: message(text("Checked."))
    result = await claude.complete(REQUEST)
    assert result.content == [{"type": "text", "text": "Checked."}]
