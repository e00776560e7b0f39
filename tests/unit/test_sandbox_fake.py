"""FakeSandbox: deterministic, recorded, and shaped like the real thing."""

from __future__ import annotations

import pytest

from sandbox import (
    ExecutionRequest,
    FakeOutcome,
    FakeSandbox,
    InputFile,
    InvalidInputError,
    Sandbox,
    SandboxConfig,
    SandboxError,
)


def request(code: str = "print(1)", **kwargs: object) -> ExecutionRequest:
    return ExecutionRequest.model_validate(
        {"code": code, "ticket_id": "t", "run_id": "r", "step_id": "s", **kwargs}
    )


async def test_default_outcome_and_recording() -> None:
    fake = FakeSandbox()
    assert isinstance(fake, Sandbox)
    result = await fake.run(request())
    assert result.exit_code == 0 and result.stdout == "" and not result.from_pool
    assert result.runtime == "fake" and result.kernel == ""  # nothing ran it
    assert [r.code for r in fake.requests] == ["print(1)"]


async def test_queue_then_rules_then_default() -> None:
    fake = FakeSandbox(default=FakeOutcome(exit_code=9))
    fake.on("a", FakeOutcome(stdout="rule a"))
    fake.on(lambda r: r.language == "bash", FakeOutcome(stdout="bash rule"))
    fake.queue(FakeOutcome(stdout="queued"))
    assert (await fake.run(request("a"))).stdout == "queued"
    assert (await fake.run(request("a"))).stdout == "rule a"
    assert (await fake.run(request("echo", language="bash"))).stdout == "bash rule"
    assert (await fake.run(request("other"))).exit_code == 9


async def test_results_go_through_the_real_caps() -> None:
    fake = FakeSandbox(
        SandboxConfig(stdout_limit_bytes=256, max_output_files=1, max_output_file_bytes=3)
    )
    fake.queue(
        FakeOutcome(
            stdout="x" * 1000,
            stderr=b"\xff",
            output_files={"a.txt": "abcdef", "b.txt": "zzz"},
        )
    )
    result = await fake.run(request())
    assert result.stdout_truncated_bytes == 744
    assert "744 bytes of stdout dropped" in result.stdout
    assert result.stderr == "\ufffd" and result.stderr_invalid_utf8
    [kept] = result.output_files
    assert (kept.name, kept.size, kept.truncated, kept.text) == ("a.txt", 6, True, "abc")
    assert result.output_files_omitted == 1


async def test_timeout_and_oom_outcomes() -> None:
    fake = FakeSandbox()
    fake.queue(
        FakeOutcome(timed_out=True, exit_code=0), FakeOutcome(oom_killed=True, exit_code=137)
    )
    timed_out = await fake.run(request())
    assert timed_out.timed_out and timed_out.exit_code is None
    oom = await fake.run(request())
    assert oom.oom_killed and oom.exit_code == 137


async def test_validation_and_scripted_errors() -> None:
    fake = FakeSandbox()
    with pytest.raises(InvalidInputError):
        await fake.run(request(files=[InputFile(name="../x", data=b"")]))
    assert fake.requests == []  # refused requests are not recorded as run
    fake.queue(FakeOutcome(error=SandboxError("docker is down")))
    with pytest.raises(SandboxError, match="docker is down"):
        await fake.run(request())


async def test_summary_is_bounded_and_keeps_stderr() -> None:
    fake = FakeSandbox(SandboxConfig(stdout_limit_bytes=100_000))
    fake.queue(FakeOutcome(exit_code=1, stdout="o" * 50_000, stderr="Traceback: boom\n"))
    result = await fake.run(request())
    text = result.summary(max_chars=2000)
    assert len(text) <= 2000
    assert text.startswith("[exit code 1,")
    assert "Traceback: boom" in text
    assert "characters cut" in text
