"""Defaults are safe, limits are validated, names and labels are deterministic."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from sandbox import SandboxConfig, SandboxError
from sandbox.containers import Runtime, memory_limit_mb, pids_limits, resolve_runtime
from sandbox.naming import Labels, container_name, pool_container_name

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def test_defaults_are_locked_down() -> None:
    config = SandboxConfig()
    assert config.image == "support-agent-sandbox:latest"
    assert config.runtime == "auto"  # gVisor wherever Docker has it
    assert config.user == "10001:10001"
    assert config.timeout_seconds == 30
    assert config.timeout_seconds <= config.max_timeout_seconds
    assert config.pool_size == 2
    assert 0 < config.memory_mb <= 1024 and 0 < config.cpus <= 2 and 0 < config.pids <= 256
    assert config.stdout_limit_bytes <= 1024 * 1024
    assert config.max_output_total_bytes <= config.output_size_mb * 1024 * 1024
    assert config.marker_label == "support-agent.sandbox"


def test_config_is_immutable_and_strict() -> None:
    config = SandboxConfig()
    with pytest.raises(ValidationError):
        config.memory_mb = 10_000
    with pytest.raises(ValidationError):
        SandboxConfig(memroy_mb=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "bad",
    [
        {"timeout_seconds": 400, "max_timeout_seconds": 300},
        {"memory_mb": 4},
        {"pids": 0},
        {"cpus": 0},
        {"pool_size": -1},
        {"max_output_total_bytes": 100 * 1024 * 1024, "output_size_mb": 1},
        {"label_prefix": "Bad Prefix"},
        {"user": "0:0"},
        {"user": "root"},
        {"user": "10001:0"},
        {"runtime": ""},
        {"runtime": "--privileged"},
    ],
)
def test_unsafe_or_inconsistent_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SandboxConfig.model_validate(bad)


def test_effective_timeout() -> None:
    config = SandboxConfig(timeout_seconds=10, max_timeout_seconds=20)
    assert config.effective_timeout(None) == 10
    assert config.effective_timeout(3) == 3
    assert config.effective_timeout(99) == 20


def test_container_names_are_deterministic_and_valid() -> None:
    name = container_name("T-1", "run", "step")
    assert name == container_name("T-1", "run", "step")
    assert name.startswith("sa-T-1-step-")
    assert name != container_name("T-1", "run", "step2")
    assert name != container_name("T-1", "run2", "step")
    for ids in [
        ("", "", ""),
        ("../../x y", "r", "\u00e9t\u00e9!"),
        ("a" * 200, "b" * 200, "c" * 200),
    ]:
        made = container_name(*ids)
        assert DOCKER_NAME.match(made) and len(made) <= 63, made
    # Sanitizing alone would merge these; the hash keeps them apart.
    assert container_name("a/b", "r", "s") != container_name("a_b", "r", "s")
    assert DOCKER_NAME.match(pool_container_name())


def test_labels_carry_ids_and_expiry() -> None:
    labels = Labels("support-agent")
    made = labels.for_container(1000.2, ("ticket", "run", "step"))
    assert made["support-agent.sandbox"] == "1"
    assert made["support-agent.sandbox.ticket"] == "ticket"
    assert labels.expiry(made) == 1001  # rounded up, never early
    assert "support-agent.sandbox.pool" in labels.for_container(5)
    assert labels.expiry({}) is None and labels.expiry({labels.expires: "soon"}) is None


class StubDocker:
    """Answers ``info()`` like a daemon with the given runtimes."""

    def __init__(self, runtimes: dict[str, dict[str, object]], default: str = "runc") -> None:
        self._info: dict[str, object] = {"Runtimes": runtimes, "DefaultRuntime": default}

    def info(self) -> dict[str, object]:
        return self._info


RUNC: dict[str, dict[str, object]] = {"runc": {"path": "runc"}}
RUNSC: dict[str, dict[str, object]] = {
    "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}
}


@pytest.mark.parametrize(
    ("setting", "registered", "expected"),
    [
        ("auto", RUNC | RUNSC, ("runsc", True)),
        ("auto", RUNC, ("runc", False)),  # with a warning: the host kernel is shared
        ("auto", RUNC | {"gvisor": {"path": "/opt/bin/runsc"}}, ("gvisor", True)),
        ("runc", RUNC | RUNSC, ("runc", False)),
        ("runsc", RUNC | RUNSC, ("runsc", True)),
    ],
)
def test_runtime_resolution(
    setting: str, registered: dict[str, dict[str, object]], expected: tuple[str, bool]
) -> None:
    config = SandboxConfig(runtime=setting)
    assert resolve_runtime(StubDocker(registered), config) == Runtime(*expected)


def test_an_unregistered_runtime_is_a_clear_error() -> None:
    with pytest.raises(SandboxError, match="'runsc' is not registered with Docker"):
        resolve_runtime(StubDocker(RUNC), SandboxConfig(runtime="runsc"))


def test_gvisor_limits_the_code_inside_and_leaves_itself_room_outside() -> None:
    config = SandboxConfig(pids=100, memory_mb=512)
    # runc: the pids cgroup and the memory limit are the code's, as configured.
    assert pids_limits(config, Runtime("runc", False)) == (100, [])
    assert memory_limit_mb(config, Runtime("runc", False)) == 512
    # gVisor: RLIMIT_NPROC holds the code to its limit; the cgroup is a backstop
    # for gVisor's own threads and memory.
    host_pids, ulimits = pids_limits(config, Runtime("runsc", True))
    assert [(u["Name"], u["Soft"], u["Hard"]) for u in ulimits] == [("nproc", 100, 100)]
    assert host_pids > 10 * config.pids
    assert memory_limit_mb(config, Runtime("runsc", True)) == 512 + 64 + 4 * 100
