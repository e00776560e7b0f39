"""Fixtures for end-to-end tests: the real engine and real worker processes.

Each test session gets its own Hatchet namespace, so runs and workers of
other sessions (or a developer's own worker) never interfere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from hatchet_sdk import Hatchet

from agent.attachments import Attachment
from tests.conftest import attachment
from tests.fake_anthropic import FakeAnthropic
from tests.helpers import stop_process, unavailable
from tests.namespaces import delete_namespaces, remember
from workflows.deps import open_evidence_store
from workflows.engine import (
    EngineInfo,
    EngineUnavailableError,
    connect,
    running_engine,
    start_engine_background,
    stop_engine,
)
from workflows.settings import Settings
from workflows.support import SupportWorkflow, build_support_workflow


def stored(name: str, data: bytes, ticket_id: str = "T-e2e") -> Attachment:
    """An attachment kept in the evidence store the workers read (the settings' own)."""
    return attachment(name, data, store=open_evidence_store(Settings()), ticket_id=ticket_id)


class WorkerProcess:
    """A ``support-agent worker`` subprocess in a given namespace."""

    def __init__(
        self, namespace: str, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        # Every namespace a test starts a worker in is deleted when the session ends.
        self.namespace = remember(namespace)
        self.log_path = log_path
        env = {
            **os.environ,
            "HATCHET_CLIENT_NAMESPACE": namespace,
            "SUPPORT_AGENT_LLM": "offline",
            **(extra_env or {}),
        }
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker"],
                env=env,
                stdout=log,
                stderr=log,
            )

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no eviction, no goodbye to the engine."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[EngineInfo | None]:
    """The engine: external if configured, the running one, or one started for this session."""
    if settings.external_engine:
        yield None
        return
    info = running_engine(settings)
    started = False
    if info is None:
        try:
            info = start_engine_background(settings)
        except EngineUnavailableError as exc:
            unavailable(f"Hatchet engine: {exc}")
        started = True
    yield info
    if started:
        stop_engine(settings)


@pytest.fixture(scope="session", autouse=True)
def forget_namespaces(engine: EngineInfo | None, settings: Settings) -> Iterator[None]:
    """Delete this session's workflows from the engine (after its workers stopped).

    Left behind, the engine keeps polling their queues and concurrency
    strategies (``tests.namespaces`` says what that cost).
    """
    yield
    try:
        delete_namespaces(settings)
    except Exception as exc:  # an engine a test stopped: the next session still works
        print(f"could not delete this session's namespaces: {exc}")


RestartEngine = Callable[[], float]


@pytest.fixture
def restart_engine(engine: EngineInfo | None, settings: Settings) -> RestartEngine:
    """``support-agent engine stop`` then ``engine start`` on the session's settings; the seconds
    it took. The engine keeps running afterwards (the session fixture still owns it)."""
    if settings.external_engine:
        pytest.skip("an external engine (HATCHET_CLIENT_TOKEN) is not restarted by the tests")

    def restart() -> float:
        started = time.monotonic()
        stop_engine(settings)
        start_engine_background(settings)
        return time.monotonic() - started

    return restart


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def worker(
    engine: EngineInfo | None, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(namespace, tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    process.stop()


SpawnWorker = Callable[..., WorkerProcess]


@pytest.fixture
def spawn_worker(engine: EngineInfo | None, tmp_path: Path) -> Iterator[SpawnWorker]:
    """Start extra workers (in any namespace) that are stopped when the test ends."""
    started: list[WorkerProcess] = []

    def spawn(namespace: str, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        process = WorkerProcess(namespace, tmp_path / f"worker-{len(started)}.log", extra_env)
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def hatchet(
    engine: EngineInfo | None, settings: Settings, namespace: str
) -> AsyncIterator[Hatchet]:
    yield connect(settings, namespace=namespace)


@pytest.fixture(scope="session")
def support(hatchet: Hatchet, settings: Settings, worker: WorkerProcess) -> SupportWorkflow:
    return build_support_workflow(hatchet, settings)


@pytest.fixture(scope="session")
def fake_claude() -> Iterator[FakeAnthropic]:
    """The fake Messages API; workers reach it through ANTHROPIC_BASE_URL (loopback only)."""
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="session")
def claude_namespace() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def claude_worker(
    engine: EngineInfo | None,
    claude_namespace: str,
    fake_claude: FakeAnthropic,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """A worker whose model is 'Claude', answered by the fake API with scripted turns."""
    process = WorkerProcess(
        claude_namespace,
        tmp_path_factory.mktemp("claude-worker") / "worker.log",
        {**fake_claude.env(), "SUPPORT_AGENT_LLM": "claude", "SUPPORT_AGENT_LLM_RETRIES": "1"},
    )
    yield process
    process.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def claude_hatchet(
    engine: EngineInfo | None, settings: Settings, claude_namespace: str
) -> AsyncIterator[Hatchet]:
    yield connect(settings, namespace=claude_namespace)


@pytest.fixture(scope="session")
def claude_support(
    claude_hatchet: Hatchet, settings: Settings, claude_worker: WorkerProcess
) -> SupportWorkflow:
    return build_support_workflow(claude_hatchet, settings)
