"""DockerSandbox behaviour beyond the contract: concurrency, cancellation, failures."""

from __future__ import annotations

import asyncio

import pytest

from sandbox import DockerSandbox, InputFile, SandboxError
from sandbox.containers import remove_container

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_concurrent_runs_do_not_mix(docker_sandbox, make_request, assert_cleaned_up) -> None:
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
    docker_sandbox, make_request, assert_cleaned_up
) -> None:
    script = (
        "set -e\nls /work/input\nmkdir -p /work/output/a/b\n"
        "wc -l < /work/input/log.txt > /work/output/a/b/count\n"
    )
    result = await docker_sandbox.run(
        make_request(script, language="bash", files=[InputFile(name="log.txt", data=b"1\n2\n3\n")])
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "log.txt\n"
    assert [(f.name, f.text) for f in result.output_files] == [("a/b/count", "3\n")]
    assert_cleaned_up()


async def test_cancelling_a_run_destroys_its_container(
    docker_sandbox, make_request, leftovers, assert_cleaned_up
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
    assert_cleaned_up(within=5)


async def test_missing_image_is_a_clear_sandbox_error(
    docker_client, make_sandbox_config, make_request, leftovers
) -> None:
    sandbox = DockerSandbox(
        make_sandbox_config(image="support-agent-sandbox:no-such-tag"), client=docker_client
    )
    with pytest.raises(SandboxError, match="not found"):
        await sandbox.run(make_request("print(1)"))
    await sandbox.close()
    assert leftovers() == []


async def test_a_dead_pool_container_falls_back_to_a_fresh_one(
    docker_client, pooled_sandbox, make_request, assert_cleaned_up
) -> None:
    # Somebody (a reaper elsewhere, an operator) removed it behind our back.
    for pooled in list(pooled_sandbox.pool._ready):
        remove_container(docker_client, pooled.id)
    result = await pooled_sandbox.run(make_request("print('fresh')"))
    assert result.stdout == "fresh\n" and result.from_pool is False
    assert_cleaned_up()
