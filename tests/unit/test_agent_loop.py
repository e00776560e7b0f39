from typing import Any

import pytest

from agent.budget import Budget, Spent, code_runs_left, exhausted
from agent.llm import TurnResult, Usage
from agent.loop import plan_turn
from agent.tools import ESCALATE, REPLY, RUN_CODE, parse_tool_call, tool_definitions
from tests.conftest import turn_request

CODE = {"language": "python", "code": "print(1)", "purpose": "check"}


def _turn(*blocks: dict[str, Any]) -> TurnResult:
    return TurnResult(planner="test", content=list(blocks), stop_reason="tool_use", usage=Usage())


def _use(name: str, args: object, call_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": args}


def test_code_calls_are_planned_in_order() -> None:
    plan = plan_turn(_turn(_use(RUN_CODE, CODE, "a"), _use(RUN_CODE, CODE, "b")), 5)
    assert [c.tool_use_id for c in plan.code_calls] == ["a", "b"]
    assert plan.decision is None and not plan.immediate_results


def test_invalid_tool_input_becomes_an_error_result_for_the_model() -> None:
    plan = plan_turn(
        _turn(
            _use(RUN_CODE, {"language": "ruby", "code": "x", "purpose": "p"}, "a"),
            _use("rm_rf", {}, "b"),
            _use(RUN_CODE, "not an object", "c"),
        ),
        5,
    )
    assert not plan.code_calls
    results = {r["tool_use_id"]: r for r in plan.immediate_results}
    assert set(results) == {"a", "b", "c"}
    assert all(r["is_error"] for r in results.values())
    assert "language" in results["a"]["content"]
    assert "unknown tool 'rm_rf'" in results["b"]["content"]


@pytest.mark.parametrize(
    ("name", "args", "said"),
    [
        (REPLY, {"message": "   \n "}, "message: the message is empty"),
        (REPLY, {"message": "ok\x00"}, "message: the message contains a NUL character"),
        (REPLY, {"message": "ok", "findings": [" "]}, "findings.0: the finding is empty"),
        (ESCALATE, {"reason": "\t"}, "reason: the reason is empty"),
        (RUN_CODE, {**CODE, "purpose": " "}, "purpose: the purpose is empty"),
        (RUN_CODE, {**CODE, "code": "print(1)\x00"}, "code: the code contains a NUL character"),
    ],
)
def test_the_models_text_gets_the_checks_a_customers_text_gets(
    name: str, args: dict[str, Any], said: str
) -> None:
    """A blank reply is never sent; a NUL would fail the ticket at the engine."""
    plan = plan_turn(_turn(_use(name, args, "a")), 5)
    assert plan.decision is None and not plan.code_calls
    (result,) = plan.immediate_results
    assert result["is_error"] and said in result["content"], result["content"]


def test_the_models_text_is_kept_stripped_and_its_code_exactly() -> None:
    reply = parse_tool_call(REPLY, {"message": "  Fixed.\n", "findings": [" a "]})
    assert (reply.message, reply.findings) == ("Fixed.", ["a"])  # type: ignore[union-attr]
    code = parse_tool_call(RUN_CODE, {**CODE, "code": "  if True:\n    print(1)\n"})
    assert code.code == "  if True:\n    print(1)\n"  # type: ignore[union-attr]


def test_an_invalid_calls_error_is_the_same_whatever_the_key_order() -> None:
    """The turn comes back from the engine on replay with its keys reordered."""
    first = {"language": "python", "code": "x", "purpose": "p", "filename": "a", "args": []}
    replayed = dict(reversed(first.items()))
    errors = [
        plan_turn(_turn(_use(RUN_CODE, a, "a")), 5).immediate_results for a in (first, replayed)
    ]
    assert errors[0] == errors[1]
    assert "args: Extra inputs" in errors[0][0]["content"]


def test_a_finishing_tool_ends_the_round_and_closes_other_calls() -> None:
    plan = plan_turn(
        _turn(
            _use(RUN_CODE, CODE, "a"),
            _use(REPLY, {"message": "fixed", "findings": ["x"]}, "b"),
            _use(ESCALATE, {"reason": "too late"}, "c"),
        ),
        5,
    )
    assert plan.decision is not None
    assert (plan.decision.kind, plan.decision.message) == ("reply", "fixed")
    assert not plan.code_calls
    assert {r["tool_use_id"] for r in plan.closing_results} == {"a", "b", "c"}


def test_code_beyond_the_budget_is_refused() -> None:
    plan = plan_turn(_turn(_use(RUN_CODE, CODE, "a"), _use(RUN_CODE, CODE, "b")), 1)
    assert [c.tool_use_id for c in plan.code_calls] == ["a"]
    assert plan.immediate_results[0]["tool_use_id"] == "b"
    assert not plan.code_budget_refused
    refused = plan_turn(_turn(_use(RUN_CODE, CODE, "a")), 0)
    assert refused.code_budget_refused and not refused.code_calls


def test_a_turn_with_no_tool_call_asks_for_nothing() -> None:
    plan = plan_turn(_turn({"type": "text", "text": "hmm"}), 3)
    assert plan.asked_for_nothing


def test_budgets_name_what_ran_out() -> None:
    budget = Budget(max_steps=3, max_code_runs=2, max_sandbox_seconds=10, max_tokens=1000)
    assert exhausted(budget, Spent()) is None
    assert "step budget" in (exhausted(budget, Spent(steps=3)) or "")
    assert "sandbox-time budget" in (exhausted(budget, Spent(sandbox_seconds=10.5)) or "")
    assert "token budget" in (exhausted(budget, Spent(tokens=1000)) or "")
    assert code_runs_left(budget, Spent(code_runs=5)) == 0


def test_tool_definitions_are_stable_and_strict() -> None:
    tools = tool_definitions()
    assert [t["name"] for t in tools] == [RUN_CODE, REPLY, ESCALATE]
    assert tools == tool_definitions()
    assert tools[0]["input_schema"]["additionalProperties"] is False
    assert parse_tool_call(REPLY, {"message": "hi"}).resolved is False  # type: ignore[union-attr]


def test_turn_requests_serialise_identically_whatever_the_key_order() -> None:
    # Replayed child outputs may come back with keys reordered; the replayed
    # request must still be byte-identical to the first one.
    block = {"type": "tool_use", "id": "t", "name": RUN_CODE, "input": {"b": 1, "a": 2}}
    reordered = {"input": {"a": 2, "b": 1}, "name": RUN_CODE, "id": "t", "type": "tool_use"}

    def request(content: dict[str, Any]) -> str:
        return turn_request(
            messages=[{"role": "assistant", "content": [content]}]
        ).model_dump_json()

    assert request(block) == request(reordered)
