"""The model behind the agent, as a small protocol.

A turn takes the whole request (system prompt, tools, transcript) and
returns the assistant's content blocks plus token usage. Everything is plain
JSON-compatible data, so a turn can be a durable child task's input and
output, and any implementation (Claude, the offline planner, a scripted fake)
can stand behind it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pydantic import BaseModel, Field, field_validator

TextSink = Callable[[str], Awaitable[None]]


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
        )


class ToolCall(BaseModel):
    id: str
    name: str
    input: Any


class TurnRequest(BaseModel):
    """Everything one model call needs; the input of the ``llm-turn`` child task."""

    ticket_id: str
    customer: str = Field(description="Concurrency key: turns are round-robined per customer.")
    model: str
    max_tokens: int = Field(gt=0)
    system: str
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    attachments: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Attachment metadata (name, type, size, sha256) for planners that need it.",
    )

    @field_validator("tools", "messages", "attachments")
    @classmethod
    def _canonical(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sort keys at every level.

        The transcript is rebuilt from recorded child outputs when the durable
        task replays, and the engine may hand those back with their keys in a
        different order. A replayed turn must serialise to exactly the same
        request, or the engine rightly reports non-determinism (and a stable
        order keeps the prompt-cache prefix identical too).
        """
        canonical: list[dict[str, Any]] = json.loads(json.dumps(value, sort_keys=True))
        return canonical


class TurnResult(BaseModel):
    """The assistant's answer; the output of the ``llm-turn`` child task."""

    planner: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(id=block["id"], name=block["name"], input=block.get("input"))
            for block in self.content
            if block.get("type") == "tool_use"
        ]

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")


class LLMError(Exception):
    """A model call failed; ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class LLM(Protocol):
    """One model turn. ``on_text`` receives text as it is generated (for live streaming)."""

    name: str

    async def complete(
        self, request: TurnRequest, on_text: TextSink | None = None
    ) -> TurnResult: ...
