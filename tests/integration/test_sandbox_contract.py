"""One contract, two implementations: FakeSandbox must behave like DockerSandbox.

Every program below runs for real in Docker; the fake is scripted with what
that program does (``FakeOutcome``), and both results must satisfy the same
assertions. If the shapes ever drift apart, callers tested against the fake
would be tested against a lie: this suite is what keeps it honest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypedDict, Unpack

import pytest

from sandbox import (
    ExecutionResult,
    FakeOutcome,
    FakeSandbox,
    InputFile,
    InvalidInputError,
    Sandbox,
)
from tests.integration.conftest import RUNTIMES, RequestFactory, small_sandbox_config

pytestmark = pytest.mark.integration

# name: (code, what the code does, for the fake)
PROGRAMS: dict[str, tuple[str, FakeOutcome]] = {
    "hello": ("print('hello')", FakeOutcome(stdout="hello\n")),
    "exit3": (
        "import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)",
        FakeOutcome(exit_code=3, stderr="bye\n"),
    ),
    "flood": ("print('x' * 100000)", FakeOutcome(stdout="x" * 100000 + "\n")),
    "files": (
        "open('/work/output/a.txt', 'w').write('alpha')\n"
        "open('/work/output/b.bin', 'wb').write(b'\\x00\\xff')",
        FakeOutcome(output_files={"a.txt": "alpha", "b.bin": b"\x00\xff"}),
    ),
    "binary": (
        "import sys; sys.stdout.buffer.write(b'bad \\xff byte')",
        FakeOutcome(stdout=b"bad \xff byte"),
    ),
    "spin": ("while True: pass", FakeOutcome(exit_code=None, timed_out=True, duration_seconds=1)),
}


CONFIG = small_sandbox_config()


# The fake, and Docker under each runtime.
@pytest.fixture(params=["fake", *RUNTIMES])
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    if request.param != "fake":
        make: Callable[[str], Sandbox] = request.getfixturevalue("docker_sandboxes")
        return make(request.param)
    fake = FakeSandbox(CONFIG)
    for code, outcome in PROGRAMS.values():
        fake.on(code, outcome)
    return fake


class _RequestOptions(TypedDict, total=False):
    """What ``run`` passes on to ``make_request`` besides the code and step id."""

    language: str
    files: list[InputFile] | None
    timeout: float | None


async def run(
    sandbox: Sandbox, make_request: RequestFactory, program: str, **kwargs: Unpack[_RequestOptions]
) -> ExecutionResult:
    code, _ = PROGRAMS[program]
    return await sandbox.run(make_request(code, step_id=program, **kwargs))


async def test_is_a_sandbox(sandbox: Sandbox) -> None:
    assert isinstance(sandbox, Sandbox)


async def test_stdout_and_result_shape(sandbox: Sandbox, make_request: RequestFactory) -> None:
    result = await run(sandbox, make_request, "hello")
    assert result.exit_code == 0
    assert result.stdout == "hello\n"
    assert result.stderr == ""
    assert (result.timed_out, result.oom_killed) == (False, False)
    assert result.stdout_truncated_bytes == 0 and not result.stdout_invalid_utf8
    assert result.container_name.startswith("sa-")
    assert result.runtime  # which runtime ran it ("fake" for the fake)
    assert result.duration_seconds >= 0
    assert json.loads(json.dumps(result.model_dump(mode="json")))["stdout"] == "hello\n"
    assert ExecutionResult.model_validate_json(result.model_dump_json()) == result


async def test_exit_code_and_stderr_pass_through(
    sandbox: Sandbox, make_request: RequestFactory
) -> None:
    result = await run(sandbox, make_request, "exit3")
    assert result.exit_code == 3
    assert result.stderr == "bye\n"
    assert "exit code 3" in result.summary()


async def test_truncation_keeps_head_and_tail_with_a_note(
    sandbox: Sandbox, make_request: RequestFactory
) -> None:
    result = await run(sandbox, make_request, "flood")
    dropped = 100001 - CONFIG.stdout_limit_bytes
    assert result.stdout_truncated_bytes == dropped
    assert f"{dropped} bytes of stdout dropped" in result.stdout
    assert result.stdout.startswith("xxxx") and result.stdout.endswith("xxx\n")
    assert any("over the limit" in note for note in result.notes)


async def test_output_files_are_listed(sandbox: Sandbox, make_request: RequestFactory) -> None:
    result = await run(sandbox, make_request, "files")
    files = {f.name: f for f in result.output_files}
    assert sorted(files) == ["a.txt", "b.bin"]
    assert files["a.txt"].text == "alpha" and files["a.txt"].size == 5
    assert files["b.bin"].text is None and files["b.bin"].base64 == "AP8="
    assert not any(f.truncated for f in files.values())


async def test_invalid_utf8_is_replaced_and_flagged(
    sandbox: Sandbox, make_request: RequestFactory
) -> None:
    result = await run(sandbox, make_request, "binary")
    assert result.stdout == "bad \ufffd byte"
    assert result.stdout_invalid_utf8


async def test_timeout(sandbox: Sandbox, make_request: RequestFactory) -> None:
    result = await run(sandbox, make_request, "spin", timeout=1)
    assert result.timed_out is True
    assert result.exit_code is None
    assert "TIMED OUT" in result.summary()


@pytest.mark.parametrize("name", ["../x", "/abs", "", "a\x00b", "dir//file", "dir/../x"])
async def test_hostile_names_are_rejected(
    sandbox: Sandbox, make_request: RequestFactory, name: str
) -> None:
    with pytest.raises(InvalidInputError):
        await sandbox.run(make_request("print(1)", files=[InputFile(name=name, data=b"")]))


async def test_same_ids_give_the_same_container_name(
    sandbox: Sandbox, make_request: RequestFactory
) -> None:
    first = await run(sandbox, make_request, "hello")
    second = await run(sandbox, make_request, "hello")
    assert first.container_name == second.container_name
