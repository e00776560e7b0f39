"""The child tasks' own logic, with the package's fakes instead of Claude and Docker.

``aio_mock_run`` runs a task function without an engine; the client only
needs a syntactically valid token to be constructed (nothing connects).
"""

from __future__ import annotations

import json

import pytest
from hatchet_sdk import ClientConfig, Hatchet, NonRetryableException

from agent.attachments import Attachment
from agent.fake_llm import ScriptedLLM, tool_call
from agent.llm import LLMError, TurnRequest
from sandbox import FakeOutcome, FakeSandbox
from tests.conftest import offline_token
from workflows.deps import AttachmentLoader, Dependencies
from workflows.models import CodeRunRequest
from workflows.settings import Settings
from workflows.tasks import ChildTasks, build_child_tasks

ATTACHMENT = Attachment.from_bytes("app.log", b"ERROR boom\n")


async def _fetch_run_input(run_id: str) -> dict[str, object]:
    assert run_id == "root-run"
    return {"ticket": {"attachments": [json.loads(ATTACHMENT.model_dump_json())]}}


def _tasks(llm: ScriptedLLM, sandbox: FakeSandbox | None) -> ChildTasks:
    hatchet = Hatchet(config=ClientConfig(token=offline_token(), tls_config={"strategy": "none"}))
    deps = Dependencies(llm=llm, attachments=AttachmentLoader(_fetch_run_input), sandbox=sandbox)
    return build_child_tasks(hatchet, Settings(), deps)


def _turn_request() -> TurnRequest:
    return TurnRequest(
        ticket_id="T-1",
        customer="c",
        model="m",
        max_tokens=256,
        system="s",
        tools=[],
        messages=[{"role": "user", "content": "hi"}],
    )


async def test_llm_turn_returns_the_models_tool_calls() -> None:
    llm = ScriptedLLM([[tool_call("reply_to_customer", {"message": "ok"}, "t1")]])
    result = await _tasks(llm, None).llm_turn.aio_mock_run(_turn_request())
    assert [c.name for c in result.tool_calls] == ["reply_to_customer"]
    assert llm.requests[0].ticket_id == "T-1"


async def test_a_permanent_model_error_is_not_retried() -> None:
    llm = ScriptedLLM([LLMError("Claude API error 401: bad key", retryable=False)])
    with pytest.raises(NonRetryableException, match="401"):
        await _tasks(llm, None).llm_turn.aio_mock_run(_turn_request())


async def test_a_transient_model_error_is_left_to_hatchet_retries() -> None:
    llm = ScriptedLLM([LLMError("Claude API error 529: overloaded", retryable=True)])
    with pytest.raises(LLMError) as caught:
        await _tasks(llm, None).llm_turn.aio_mock_run(_turn_request())
    assert not isinstance(caught.value, NonRetryableException)


async def test_run_code_materialises_attachments_and_reports_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hatchet_sdk import Context

    async def no_stream(self: Context, data: str | bytes) -> None:  # no engine to stream to
        return None

    monkeypatch.setattr(Context, "aio_put_stream", no_stream)
    sandbox = FakeSandbox(default=FakeOutcome(stdout="errors=1\n"))
    request = CodeRunRequest(
        ticket_id="T-1",
        customer="c",
        round=1,
        step=1,
        purpose="count",
        language="python",
        code="print('x')",
        attachments=[ATTACHMENT.ref],
        root_run_id="root-run",
        timeout_seconds=5,
    )
    result = await _tasks(ScriptedLLM(), sandbox).run_code.aio_mock_run(request)
    assert result.stdout == "errors=1\n" and result.purpose == "count"
    (sent,) = sandbox.requests
    assert [(f.name, f.data) for f in sent.files] == [("app.log", b"ERROR boom\n")]
    assert (sent.ticket_id, sent.run_id) == ("T-1", "root-run")
