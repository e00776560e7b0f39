"""DockerSandbox behaviour beyond the contract: concurrency, cancellation, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import docker
import pytest

from sandbox import DockerSandbox, InputFile, SandboxConfig, SandboxError
from sandbox.containers import remove_container
from tests.integration.conftest import RequestFactory, require_runtime, small_sandbox_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_concurrent_runs_do_not_mix(
    docker_sandbox: DockerSandbox,
    make_request: RequestFactory,
    assert_cleaned_up: Callable[..., None],
) -> None:
    code = "print(open('/work/input/n').read() * 2)"
    requests = [
        make_request(code, step_id=f"s{i}", files=[InputFile(name="n", data=str(i).encode())])
        for i in range(5)
    ]
    results = await asyncio.gather(*(docker_sandbox.run(r) for r in requests))
    assert [r.stdout for r in results] == [f"{i}{i}\n" for i in range(5)]
    assert len({r.container_name for r in results}) == 5
    assert_cleaned_up()


async def test_bash_with_attachments_and_nested_output(
    docker_sandbox: DockerSandbox,
    make_request: RequestFactory,
    assert_cleaned_up: Callable[..., None],
) -> None:
    # ls -l and stat: coreutils' statx calls (see setup/sandbox-compat).
    script = (
        "set -e\nls /work/input\nmkdir -p /work/output/a/b\n"
        "wc -l < /work/input/log.txt > /work/output/a/b/count\n"
        "ls -l /work/input | grep -c 'r--r--r-- 1 root root 6 ' >&2\n"
        "stat -c '%s %a %U' /work/input/log.txt >&2\n"
    )
    result = await docker_sandbox.run(
        make_request(script, language="bash", files=[InputFile(name="log.txt", data=b"1\n2\n3\n")])
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "log.txt\n"
    assert result.stderr == "1\n6 444 root\n"
    assert [(f.name, f.text) for f in result.output_files] == [("a/b/count", "3\n")]
    assert_cleaned_up()


async def test_cancelling_a_run_destroys_its_container(
    docker_sandbox: DockerSandbox,
    make_request: RequestFactory,
    leftovers: Callable[[], list[str]],
    assert_cleaned_up: Callable[..., None],
) -> None:
    task = asyncio.create_task(docker_sandbox.run(make_request("while True: pass", timeout=15)))
    for _ in range(100):
        if leftovers():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Removal is immediate, but gVisor's teardown of a busy container takes
    # seconds on a loaded 2-core machine.
    assert_cleaned_up(within=20)


async def test_missing_image_is_a_clear_sandbox_error(
    docker_client: docker.DockerClient,
    make_sandbox_config: Callable[..., SandboxConfig],
    make_request: RequestFactory,
    leftovers: Callable[[], list[str]],
) -> None:
    sandbox = DockerSandbox(
        make_sandbox_config(image="support-agent-sandbox:no-such-tag"), client=docker_client
    )
    with pytest.raises(SandboxError, match="not found"):
        await sandbox.run(make_request("print(1)"))
    await sandbox.close()
    assert leftovers() == []


async def test_a_dead_pool_container_falls_back_to_a_fresh_one(
    docker_client: docker.DockerClient,
    pooled_sandbox: DockerSandbox,
    make_request: RequestFactory,
    assert_cleaned_up: Callable[..., None],
) -> None:
    # Somebody (a reaper elsewhere, an operator) removed it behind our back.
    for pooled in list(pooled_sandbox.pool._ready):
        remove_container(docker_client, pooled.id)
    result = await pooled_sandbox.run(make_request("print('fresh')"))
    assert result.stdout == "fresh\n" and result.from_pool is False
    assert_cleaned_up()


async def test_the_result_names_the_runtime_and_its_kernel(
    docker_sandbox: DockerSandbox,
    runtime: str,
    make_request: RequestFactory,
    assert_cleaned_up: Callable[..., None],
) -> None:
    result = await docker_sandbox.run(make_request("import os; print(os.uname().release)"))
    assert result.runtime == runtime
    assert result.kernel == result.stdout.strip()
    # gVisor's kernel calls itself 4.4.0, whatever the host's is.
    assert (result.kernel == "4.4.0") is (runtime == "runsc")
    assert_cleaned_up()


async def test_by_default_gvisor_runs_the_code_where_registered(
    docker_client: docker.DockerClient,
    make_request: RequestFactory,
    assert_cleaned_up: Callable[..., None],
) -> None:
    registered = docker_client.info()["Runtimes"]
    # Under CI=true set-up has registered gVisor: without it this is a failure.
    require_runtime(docker_client, "runsc")
    sandbox = DockerSandbox(small_sandbox_config(), client=docker_client)  # runtime "auto"
    try:
        result = await sandbox.run(make_request("print(1)"))
    finally:
        await sandbox.close()
    assert "runsc" in registered
    assert (result.runtime, result.kernel) == ("runsc", "4.4.0")
    assert sandbox.runtime_label == "runsc (gVisor)"
    assert_cleaned_up()


def _trickled(seconds: float, size: int, pieces: int = 8) -> Callable[[], Iterator[bytes]]:
    """An input's stream that takes ``seconds`` to deliver ``size`` bytes (a slow store)."""

    def stream() -> Iterator[bytes]:
        for _ in range(pieces):
            time.sleep(seconds / pieces)
            yield b"b" * (size // pieces)

    return stream


async def test_the_wait_for_the_code_stretches_with_the_inputs_and_a_slower_copy_is_said(
    docker_client: docker.DockerClient,
    make_request: RequestFactory,
    assert_cleaned_up: Callable[..., None],
) -> None:
    """A container waits 3 s for its request here, plus 1 s per 4 MiB of inputs."""
    sandbox = DockerSandbox(
        small_sandbox_config(runtime="runc", startup_grace_seconds=3), client=docker_client
    )
    code = "import os; print(sorted(os.listdir('/work/input')))"
    try:
        # 8 MiB in 4 s: within 3 s + 2 s, so the code runs.
        big = InputFile("big.log", size=8 * 1024 * 1024, source=_trickled(4, 8 * 1024 * 1024))
        result = await sandbox.run(make_request(code, files=[big], step_id="big", timeout=5))
        assert (result.exit_code, result.stdout) == (0, "['big.log']\n")
        # 8 KiB in 4.5 s: slower than allowed for. Said at once, not after the
        # run's timeout as a timeout of code that never ran.
        small = InputFile("small.log", size=8192, source=_trickled(4.5, 8192))
        started = time.monotonic()
        with pytest.raises(SandboxError, match="stopped waiting for its code"):
            await sandbox.run(make_request(code, files=[small], step_id="small", timeout=30))
        assert time.monotonic() - started < 15
    finally:
        await sandbox.close()
    assert_cleaned_up(within=10)
