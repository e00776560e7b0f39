"""The loop's children run in this process: the same step logic, no engine.

For unit tests (with ``ScriptedLLM`` and ``FakeSandbox`` in ``Dependencies``)
and for trying the agent on one machine without Hatchet. A failing step
becomes a ``ChildFailure`` at once: there are no retries here, which is what
Hatchet would report after the last retry.
"""

from __future__ import annotations

import asyncio
import uuid

from agent.llm import TurnRequest, TurnResult
from workflows.deps import Dependencies
from workflows.diagnose import ChildFailure, error_text
from workflows.models import CodeRunRequest, CodeRunResult
from workflows.steps import complete_turn, execute_code


class InProcessChildren:
    """Implements ``workflows.diagnose.Children``; records what it was asked."""

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps
        self.turns: list[TurnRequest] = []
        self.code_runs: list[CodeRunRequest] = []

    async def llm_turn(self, request: TurnRequest, *, turn: int) -> TurnResult | ChildFailure:
        self.turns.append(request)
        try:
            return await complete_turn(self.deps, request)
        except Exception as exc:
            return ChildFailure(error_text(exc))

    async def run_code(self, requests: list[CodeRunRequest]) -> list[CodeRunResult | ChildFailure]:
        self.code_runs.extend(requests)
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: CodeRunRequest) -> CodeRunResult | ChildFailure:
        try:
            return await execute_code(self.deps, request, step_id=uuid.uuid4().hex[:12])
        except Exception as exc:
            return ChildFailure(error_text(exc))
