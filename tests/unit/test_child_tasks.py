"""The child tasks' own logic, with the package's fakes instead of Claude and Docker.

``aio_mock_run`` runs a task function without an engine; the client only
needs a syntactically valid token to be constructed (nothing connects).
"""

from __future__ import annotations

import pytest
from hatchet_sdk import ClientConfig, ClientTLSConfig, Hatchet, NonRetryableException

from agent.fake_llm import ScriptedLLM, tool_call
from agent.llm import LLMError
from evidence import MemoryStore, ingest_bytes
from sandbox import FakeOutcome, FakeSandbox
from tests.conftest import offline_token, turn_request
from workflows.deps import Dependencies, EvidenceLoader
from workflows.models import CodeRunRequest
from workflows.settings import Settings
from workflows.tasks import ChildTasks, build_child_tasks

STORE = MemoryStore()
(ATTACHMENT,) = ingest_bytes(STORE, {"app.log": b"ERROR boom\n"}, ticket_id="T-1")


def _tasks(llm: ScriptedLLM, sandbox: FakeSandbox | None, store: MemoryStore = STORE) -> ChildTasks:
    hatchet = Hatchet(
        config=ClientConfig(token=offline_token(), tls_config=ClientTLSConfig(strategy="none"))
    )
    deps = Dependencies(llm=llm, evidence=EvidenceLoader(store), sandbox=sandbox)
    return build_child_tasks(hatchet, Settings(), deps)


async def test_llm_turn_returns_the_models_tool_calls() -> None:
    llm = ScriptedLLM([[tool_call("reply_to_customer", {"message": "ok"}, "t1")]])
    result = await _tasks(llm, None).llm_turn.aio_mock_run(turn_request())
    assert [c.name for c in result.tool_calls] == ["reply_to_customer"]
    assert llm.requests[0].ticket_id == "T-1"


async def test_a_permanent_model_error_is_not_retried() -> None:
    llm = ScriptedLLM([LLMError("Claude API error 401: bad key", retryable=False)])
    with pytest.raises(NonRetryableException, match="401"):
        await _tasks(llm, None).llm_turn.aio_mock_run(turn_request())


async def test_a_transient_model_error_is_left_to_hatchet_retries() -> None:
    llm = ScriptedLLM([LLMError("Claude API error 529: overloaded", retryable=True)])
    with pytest.raises(LLMError) as caught:
        await _tasks(llm, None).llm_turn.aio_mock_run(turn_request())
    assert not isinstance(caught.value, NonRetryableException)


async def test_run_code_materialises_attachments_and_reports_the_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hatchet_sdk import Context

    async def no_stream(self: Context, data: str | bytes) -> None:  # no engine to stream to
        return None

    monkeypatch.setattr(Context, "aio_put_stream", no_stream)
    sandbox = FakeSandbox(default=FakeOutcome(stdout="errors=1\n"))
    result = await _tasks(ScriptedLLM(), sandbox).run_code.aio_mock_run(_code_request())
    assert result.stdout == "errors=1\n" and result.purpose == "count"
    (sent,) = sandbox.requests
    assert [(f.name, b"".join(f.chunks())) for f in sent.files] == [("app.log", b"ERROR boom\n")]
    assert (sent.ticket_id, sent.run_id) == ("T-1", "root-run")


def _code_request() -> CodeRunRequest:
    return CodeRunRequest(
        ticket_id="T-1",
        customer="c",
        round=1,
        step=1,
        purpose="count",
        language="python",
        code="print('x')",
        evidence=ATTACHMENT.inputs(),
        root_run_id="root-run",
        timeout_seconds=5,
    )


async def test_evidence_that_is_gone_fails_the_code_run_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hatchet_sdk import Context

    async def no_stream(self: Context, data: str | bytes) -> None:
        return None

    monkeypatch.setattr(Context, "aio_put_stream", no_stream)
    sandbox = FakeSandbox()
    with pytest.raises(NonRetryableException, match=r"evidence of ticket T-1 is gone: app\.log"):
        await _tasks(ScriptedLLM(), sandbox, MemoryStore()).run_code.aio_mock_run(_code_request())
    assert sandbox.requests == []  # refused before any container


async def test_a_store_hiccup_is_left_to_hatchet_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from hatchet_sdk import Context

    from evidence import StoreUnavailableError

    async def no_stream(self: Context, data: str | bytes) -> None:
        return None

    monkeypatch.setattr(Context, "aio_put_stream", no_stream)
    store = MemoryStore()
    ingest_bytes(store, {"app.log": b"ERROR boom\n"}, ticket_id="T-1")
    store.fail_next = 1
    tasks = _tasks(ScriptedLLM(), FakeSandbox(default=FakeOutcome(stdout="ok\n")), store)
    with pytest.raises(StoreUnavailableError) as caught:
        await tasks.run_code.aio_mock_run(_code_request())
    assert not isinstance(caught.value, NonRetryableException)
    # Hatchet's retry then succeeds: nothing about the ticket was lost.
    assert (await tasks.run_code.aio_mock_run(_code_request())).stdout == "ok\n"
