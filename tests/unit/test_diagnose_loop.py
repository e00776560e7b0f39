"""The diagnose loop's branches, driven in-process with the package's fakes.

``InProcessChildren`` runs the same step logic as the Hatchet child tasks,
with ``ScriptedLLM`` for the model and ``FakeSandbox`` for Docker: no engine.
"""

from __future__ import annotations

from typing import Any

from agent.budget import Budget
from agent.fake_llm import ScriptedLLM, tool_call
from agent.llm import LLMError
from agent.prompts import initial_messages
from agent.tickets import Ticket, TriageResult
from sandbox import FakeOutcome, FakeSandbox, SandboxError
from tests.conftest import TEST_STORE, make_run, make_ticket
from workflows.deps import Dependencies, EvidenceLoader
from workflows.diagnose import TicketState, diagnose
from workflows.local import InProcessChildren

TRIAGE = TriageResult(category="data", priority="medium", reason="test")
ROOT = "root-run"


def code(purpose: str, source: str = "print(1)") -> dict[str, Any]:
    return {"language": "python", "code": source, "purpose": purpose}


def reply(message: str = "Found it.") -> dict[str, Any]:
    return {"message": message, "findings": ["a finding"]}


class Harness:
    def __init__(self, turns: list[Any], budget: Budget | None = None, **fake: Any) -> None:
        self.ticket: Ticket = make_ticket(files={"app.log": b"ERROR boom\n"})
        self.llm = ScriptedLLM(turns)
        self.sandbox = FakeSandbox(**fake)
        self.children = InProcessChildren(
            Dependencies(llm=self.llm, evidence=EvidenceLoader(TEST_STORE), sandbox=self.sandbox)
        )
        run = make_run(self.ticket, budget=budget or Budget())
        self.state = TicketState(
            run=run, triage=TRIAGE, messages=initial_messages(self.ticket, TRIAGE)
        )

    async def run(self) -> tuple[Any, list[dict[str, Any]]]:
        return await diagnose(self.state, self.children, ROOT)

    def results(self, message: int = -1) -> dict[str, dict[str, Any]]:
        """The tool results in a user message, by tool-use id."""
        content = self.state.messages[message]["content"]
        return {b["tool_use_id"]: b for b in content if b.get("type") == "tool_result"}


async def test_parallel_code_runs_then_a_reply() -> None:
    h = Harness(
        [
            [
                tool_call("run_code", code("count errors", "print('a')"), "c1"),
                tool_call("run_code", code("profile csv", "print('b')"), "c2"),
            ],
            [tool_call("reply_to_customer", reply(), "r1")],
        ],
        default=FakeOutcome(stdout="FINDING: 1 error\n"),
    )
    decision, closing = await h.run()
    assert decision.kind == "reply" and decision.message == "Found it."
    assert [s.step for s in h.state.scripts] == [1, 2]
    assert [s.purpose for s in h.state.scripts] == ["count errors", "profile csv"]
    assert {r.code for r in h.sandbox.requests} == {"print('a')", "print('b')"}
    # The attachment was materialised for each run, verified by hash.
    assert all([f.name for f in r.files] == ["app.log"] for r in h.sandbox.requests)
    assert set(h.results(-2)) == {"c1", "c2"}
    assert "FINDING: 1 error" in h.results(-2)["c1"]["content"]
    assert [b["tool_use_id"] for b in closing] == ["r1"]
    assert h.state.spent.steps == 2 and h.state.spent.code_runs == 2
    assert h.llm.requests[1].messages == h.state.messages[:-1]


async def test_step_budget_escalates_with_the_figures() -> None:
    h = Harness(
        [[tool_call("run_code", code(f"try {i}"), f"c{i}")] for i in range(5)],
        budget=Budget(max_steps=2),
    )
    decision, _ = await h.run()
    assert decision.kind == "escalate"
    assert decision.reason == "step budget exhausted (2 of 2 model turns)"
    assert len(h.llm.requests) == 2


async def test_token_budget_escalates() -> None:
    # ScriptedLLM reports 120 tokens a turn.
    h = Harness(
        [[tool_call("run_code", code(f"try {i}"), f"c{i}")] for i in range(5)],
        budget=Budget(max_tokens=200),
    )
    decision, _ = await h.run()
    assert decision.reason == "token budget exhausted (240 of 200 tokens)"


async def test_sandbox_time_budget_escalates() -> None:
    h = Harness(
        [[tool_call("run_code", code(f"try {i}"), f"c{i}")] for i in range(5)],
        budget=Budget(max_sandbox_seconds=4),
        default=FakeOutcome(duration_seconds=3),
    )
    decision, _ = await h.run()
    # The second run gets the 1 s left as its timeout: the budget is not overrun.
    assert decision.reason == "sandbox-time budget exhausted (4.0 of 4 s)"
    assert len(h.sandbox.requests) == 2


async def test_code_runs_over_budget_are_refused_then_the_ticket_escalates() -> None:
    h = Harness(
        [
            [
                tool_call("run_code", code("first"), "c1"),
                tool_call("run_code", code("second"), "c2"),
            ],
            [tool_call("run_code", code("third"), "c3")],
        ],
        budget=Budget(max_code_runs=1),
    )
    decision, _ = await h.run()
    results = h.results(-2)
    assert "is_error" not in results["c1"]
    assert results["c2"]["is_error"] and "code-run budget is used up" in results["c2"]["content"]
    assert len(h.sandbox.requests) == 1
    assert decision.reason == "code-run budget exhausted (1 of 1 runs)"


async def test_a_turn_without_a_tool_call_is_nudged() -> None:
    h = Harness(
        [
            [{"type": "text", "text": "Let me think about it."}],
            [tool_call("reply_to_customer", reply(), "r1")],
        ]
    )
    decision, _ = await h.run()
    assert decision.kind == "reply"
    nudge = h.llm.requests[1].messages[-1]
    assert nudge["role"] == "user" and "Use a tool" in nudge["content"][0]["text"]


async def test_invalid_tool_input_goes_back_to_the_model() -> None:
    h = Harness(
        [
            [
                tool_call("run_code", {"language": "ruby", "code": "x", "purpose": "p"}, "bad"),
                tool_call("delete_everything", {}, "unknown"),
            ],
            [tool_call("reply_to_customer", reply(), "r1")],
        ]
    )
    decision, _ = await h.run()
    assert decision.kind == "reply"
    results = h.results(-2)
    assert results["bad"]["is_error"] and "language" in results["bad"]["content"]
    assert "unknown tool 'delete_everything'" in results["unknown"]["content"]
    assert not h.sandbox.requests


async def test_failing_code_is_a_result_for_the_model_not_an_error() -> None:
    h = Harness(
        [
            [tool_call("run_code", code("parse"), "c1")],
            [tool_call("reply_to_customer", reply(), "r1")],
        ],
        default=FakeOutcome(exit_code=1, stderr="Traceback: KeyError 'total'\n"),
    )
    await h.run()
    result = h.results(-2)["c1"]
    assert "is_error" not in result
    assert "exit code 1" in result["content"] and "KeyError 'total'" in result["content"]
    (script,) = h.state.scripts
    assert script.exit_code == 1 and script.error is None


async def test_a_sandbox_that_cannot_run_is_reported_to_the_model_and_recorded() -> None:
    h = Harness(
        [
            [tool_call("run_code", code("parse"), "c1")],
            [tool_call("escalate_to_human", {"reason": "no sandbox"}, "e1")],
        ],
        default=FakeOutcome(error=SandboxError("Docker does not answer")),
    )
    decision, _ = await h.run()
    result = h.results(-2)["c1"]
    assert result["is_error"]
    assert result["content"] == "The sandbox could not run this code: Docker does not answer"
    assert h.state.scripts[0].error == "Docker does not answer"
    assert decision.kind == "escalate" and decision.reason == "no sandbox"


async def test_code_requested_with_a_reply_is_not_run_and_its_call_is_closed() -> None:
    h = Harness(
        [
            [
                tool_call("run_code", code("late"), "c1"),
                tool_call("reply_to_customer", reply(), "r1"),
            ]
        ]
    )
    decision, closing = await h.run()
    assert decision.kind == "reply"
    assert not h.sandbox.requests and not h.state.scripts
    by_id = {b["tool_use_id"]: b["content"] for b in closing}
    assert by_id == {
        "r1": "Reply sent to the customer.",
        "c1": "Not executed: the round had ended.",
    }


async def test_a_failed_model_call_escalates_with_its_error() -> None:
    h = Harness([LLMError("Claude API error 401: invalid x-api-key", retryable=False)])
    decision, _ = await h.run()
    assert decision.kind == "escalate"
    assert decision.reason == "the model call failed: Claude API error 401: invalid x-api-key"
    assert h.state.spent.steps == 0


async def test_a_turns_parallel_runs_share_what_is_left_of_the_sandbox_time() -> None:
    """Checked only between turns, the budget would let 24 runs of 60 s spend 1,440 s."""
    many = [tool_call("run_code", code(f"check {i}"), f"c{i}") for i in range(4)]
    h = Harness(
        [many, many, [tool_call("reply_to_customer", reply(), "r1")]],
        budget=Budget(max_sandbox_seconds=100),
        default=FakeOutcome(duration_seconds=20.0),
    )
    await h.run()
    timeouts = [r.timeout_seconds for r in h.sandbox.requests]
    # 100 s left for 4 runs: 25 s each; then 20 s left (4 x 20 s spent): 5 s each.
    assert timeouts == [25.0] * 4 + [5.0] * 4
    assert h.state.run.code_timeout_seconds > 25
