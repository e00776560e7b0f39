"""A scripted LLM for unit tests of callers: no network, no model, fully deterministic."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from agent.llm import LLMError, TextSink, TurnRequest, TurnResult, Usage


def tool_call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


class ScriptedLLM:
    """Returns queued turns (content blocks or an ``LLMError``) and records every request."""

    name = "scripted"

    def __init__(self, turns: Iterable[list[dict[str, Any]] | LLMError] = ()) -> None:
        self._turns: deque[list[dict[str, Any]] | LLMError] = deque(turns)
        self.requests: list[TurnRequest] = []

    def add(self, turn: list[dict[str, Any]] | LLMError) -> None:
        self._turns.append(turn)

    async def complete(self, request: TurnRequest, on_text: TextSink | None = None) -> TurnResult:
        self.requests.append(request)
        if not self._turns:
            raise LLMError("ScriptedLLM has no turn left", retryable=False)
        turn = self._turns.popleft()
        if isinstance(turn, LLMError):
            raise turn
        if on_text is not None:
            for block in turn:
                if block.get("type") == "text":
                    await on_text(block["text"])
        has_tools = any(b.get("type") == "tool_use" for b in turn)
        return TurnResult(
            planner=self.name,
            content=turn,
            stop_reason="tool_use" if has_tools else "end_turn",
            usage=Usage(input_tokens=100, output_tokens=20),
        )
