"""Shared fixtures of the integration tests."""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import NoReturn, Protocol

import docker
import docker.errors
import pytest

from sandbox import DockerSandbox, ExecutionRequest, InputFile, SandboxConfig

# ---------------------------------------------------------------------------
# Sandbox (Docker) fixtures
# ---------------------------------------------------------------------------

# The worker's setting names the image to test, as it names the one to run.
SANDBOX_IMAGE = os.environ.get("SUPPORT_AGENT_SANDBOX__IMAGE", "support-agent-sandbox:latest")
# Every sandbox test runs under both: runc (the host kernel) and gVisor.
RUNTIMES = ("runc", "runsc")


def _unavailable(message: str) -> NoReturn:
    """Under CI=true a failure (the security tests must never silently not
    run there); elsewhere a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_docker() -> docker.DockerClient:
    """A Docker client with the sandbox image present."""
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(SANDBOX_IMAGE)
    except (docker.errors.DockerException, OSError) as exc:
        _unavailable(f"Docker with image {SANDBOX_IMAGE} is not available: {exc}")
    return client


def require_runtime(client: docker.DockerClient, runtime: str) -> str:
    """``runtime``, if the daemon has it registered (set-up registers runsc)."""
    registered = client.info().get("Runtimes") or {}
    if runtime not in registered:
        _unavailable(
            f"OCI runtime {runtime!r} is not registered with Docker (has: {sorted(registered)});"
            " run setup/docker.sh"
        )
    return runtime


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = require_docker()
    yield client
    client.close()


@pytest.fixture(scope="session", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, docker_client: docker.DockerClient) -> str:
    """The OCI runtime of the test: every test that uses a sandbox runs under each."""
    return require_runtime(docker_client, str(request.param))


def small_sandbox_config(**overrides: object) -> SandboxConfig:
    """Small limits and short times, so the suite is fast on two cores."""
    values: dict[str, object] = dict(
        image=SANDBOX_IMAGE,
        memory_mb=128,
        pids=48,
        tmp_size_mb=8,
        work_size_mb=8,
        output_size_mb=4,
        tmpfs_inodes=512,
        file_size_limit_mb=16,
        timeout_seconds=10,
        max_timeout_seconds=20,
        kill_grace_seconds=2,
        startup_grace_seconds=10,
        stdout_limit_bytes=16 * 1024,
        stderr_limit_bytes=8 * 1024,
        max_output_files=8,
        max_output_file_bytes=64 * 1024,
        max_output_total_bytes=256 * 1024,
        pool_size=0,
        pool_idle_seconds=60,
        max_concurrent_runs=4,
    )
    values.update(overrides)
    return SandboxConfig.model_validate(values)


@pytest.fixture(scope="session")
def make_sandbox_config(runtime: str) -> Callable[..., SandboxConfig]:
    """Small configs under the test's runtime."""
    return functools.partial(small_sandbox_config, runtime=runtime)


@pytest.fixture(scope="session")
def sandbox_config(runtime: str) -> SandboxConfig:
    return small_sandbox_config(runtime=runtime)


@pytest.fixture(scope="session")
async def docker_sandboxes(
    docker_client: docker.DockerClient,
) -> AsyncIterator[Callable[[str], DockerSandbox]]:
    """One pool-less sandbox per runtime, made on first use (for tests that
    parametrize over runtimes themselves)."""
    made: dict[str, DockerSandbox] = {}

    def get(runtime: str) -> DockerSandbox:
        if runtime not in made:
            config = small_sandbox_config(runtime=require_runtime(docker_client, runtime))
            made[runtime] = DockerSandbox(config, client=docker_client)
        return made[runtime]

    yield get
    for sandbox in made.values():
        await sandbox.close()


@pytest.fixture(scope="session")
def docker_sandbox(runtime: str, docker_sandboxes: Callable[[str], DockerSandbox]) -> DockerSandbox:
    """A sandbox without pool or reaper: every run is a fresh container."""
    return docker_sandboxes(runtime)


@pytest.fixture
async def pooled_sandbox(
    docker_client: docker.DockerClient, make_sandbox_config: Callable[..., SandboxConfig]
) -> AsyncIterator[DockerSandbox]:
    """A started sandbox with a warm pool of one, already filled."""
    sandbox = DockerSandbox(make_sandbox_config(pool_size=1), client=docker_client)
    await sandbox.start()
    try:
        assert await sandbox.pool.wait_ready(within_seconds=30)
        yield sandbox
    finally:
        await sandbox.close()


@pytest.fixture
def ticket_id() -> str:
    """A ticket id unique to the test, to find exactly its containers."""
    return f"t{uuid.uuid4().hex[:12]}"


class RequestFactory(Protocol):
    def __call__(
        self,
        code: str,
        *,
        step_id: str = ...,
        language: str = ...,
        files: list[InputFile] | None = ...,
        timeout: float | None = ...,
    ) -> ExecutionRequest: ...


@pytest.fixture
def make_request(ticket_id: str) -> RequestFactory:
    """Build requests of this test's ticket."""

    def build(
        code: str,
        *,
        step_id: str = "step",
        language: str = "python",
        files: list[InputFile] | None = None,
        timeout: float | None = None,
    ) -> ExecutionRequest:
        return ExecutionRequest.model_validate(
            dict(
                code=code,
                language=language,
                files=files or [],
                timeout_seconds=timeout,
                ticket_id=ticket_id,
                run_id="run-1",
                step_id=step_id,
            )
        )

    return build


def sandbox_containers(client: docker.DockerClient, ticket_id: str) -> list[str]:
    """Ids of a ticket's sandbox containers: by label, or by name once claimed from a pool."""
    found: set[str] = set()
    marker = "support-agent.sandbox=1"
    for filters in (
        {"label": [marker, f"support-agent.sandbox.ticket={ticket_id}"]},
        {"label": marker, "name": f"sa-{ticket_id}-"},
    ):
        # The low-level list: the high-level one inspects each container and
        # races with auto-removal.
        found.update(c["Id"] for c in client.api.containers(all=True, filters=filters))
    return sorted(found)


@pytest.fixture
def leftovers(docker_client: docker.DockerClient, ticket_id: str) -> Callable[[], list[str]]:
    """This test's sandbox containers that exist right now."""
    return lambda: sandbox_containers(docker_client, ticket_id)


@pytest.fixture
def assert_cleaned_up(leftovers: Callable[[], list[str]]) -> Callable[..., None]:
    """Assert that the test's containers are gone (auto-removal takes a moment)."""

    def check(within: float = 15) -> None:
        deadline = time.monotonic() + within
        while leftovers():
            if time.monotonic() > deadline:
                raise AssertionError(f"sandbox containers left behind: {leftovers()}")
            time.sleep(0.1)

    return check


# (Engine fixtures go below this line.)
