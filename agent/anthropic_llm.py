"""Claude through the official ``anthropic`` SDK, streamed, with prompt caching.

Cache breakpoints go on the system prompt, the last tool and the last block
of the transcript: the prefix of every turn is the previous turn's full
request, so each turn re-reads the growing transcript from the cache.
"""

from __future__ import annotations

import copy
from typing import Any

import anthropic

from agent.llm import LLMError, TextSink, TurnRequest, TurnResult, Usage

_CACHE = {"type": "ephemeral"}
# Status codes worth retrying: rate limits, overload, transient server errors.
_RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
# The same by error type: an error in the middle of a stream comes after the
# stream's 200, so only its type tells an overload from a bad request.
_RETRYABLE_TYPES = {"rate_limit_error", "api_error", "overloaded_error"}


def status_error(exc: anthropic.APIStatusError) -> LLMError:
    """The API's refusal as an ``LLMError``, retryable when waiting can help."""
    if exc.status_code >= 400:
        what = f"Claude API error {exc.status_code}"
    else:
        what = f"Claude API error during the answer ({exc.type or 'unknown type'})"
    return LLMError(
        f"{what}: {exc.message}",
        retryable=exc.status_code in _RETRYABLE_STATUS or exc.type in _RETRYABLE_TYPES,
    )


def with_cache_markers(request: TurnRequest) -> dict[str, Any]:
    """The Messages API parameters for a turn, with cache_control breakpoints set."""
    tools = copy.deepcopy(request.tools)
    if tools:
        tools[-1]["cache_control"] = _CACHE
    messages = copy.deepcopy(request.messages)
    if messages:
        content = messages[-1]["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
            messages[-1]["content"] = content
        if content:
            content[-1]["cache_control"] = _CACHE
    return {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": [{"type": "text", "text": request.system, "cache_control": _CACHE}],
        "tools": tools,
        "messages": messages,
    }


class AnthropicLLM:
    """Implements ``agent.llm.LLM`` with Claude."""

    name = "claude"

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        # Retries belong to the workflow engine (durable, visible, with backoff),
        # so the SDK's own retries are expected to be off on this client.
        self._client = client

    async def complete(self, request: TurnRequest, on_text: TextSink | None = None) -> TurnResult:
        params = with_cache_markers(request)
        try:
            async with self._client.messages.stream(**params) as stream:
                async for text in stream.text_stream:
                    if on_text is not None:
                        await on_text(text)
                final = await stream.get_final_message()
        except anthropic.APIStatusError as exc:
            raise status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise LLMError("Claude API timed out", retryable=True) from exc
        except anthropic.APIConnectionError as exc:
            raise LLMError(f"cannot reach the Claude API: {exc}", retryable=True) from exc
        usage = final.usage
        return TurnResult(
            planner=f"claude ({final.model})",
            content=[block.model_dump(mode="json", exclude_none=True) for block in final.content],
            stop_reason=final.stop_reason,
            usage=Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens or 0,
                cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
            ),
        )
