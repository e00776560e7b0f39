"""How a sandbox container is created, filled, named and destroyed (blocking calls).

Every call here blocks on the Docker API; ``DockerSandbox`` runs them in its
thread pool. The locked-down settings live in ``host_config`` and nowhere
else, so a pool container and a fresh one can never differ.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DriverConfig, LogConfig, Mount, Ulimit

from sandbox import supervisor
from sandbox.archive import input_archive
from sandbox.config import MIB, SandboxConfig
from sandbox.errors import SandboxError
from sandbox.models import InputFile
from sandbox.naming import Labels

SUPERVISOR_SOURCE = Path(supervisor.__file__).read_text(encoding="utf-8")
INPUT_DIR = "/work/input"
ROOT = ("0", "0")
# How long after its own deadline a container may still exist before the
# reaper may take it: covers the clock skew between host and daemon.
EXPIRY_SLACK_SECONDS = 5.0

# The only environment the code sees: nothing from the host, ever.
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/work",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


@contextlib.contextmanager
def docker_errors(config: SandboxConfig, doing: str) -> Iterator[None]:
    """Turn Docker SDK and transport failures into a one-line ``SandboxError``."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise SandboxError(
            f"sandbox image {config.image!r} not found (build it with setup/sandbox-image.sh)"
        ) from exc
    except docker.errors.APIError as exc:
        raise SandboxError(f"Docker refused to {doing}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise SandboxError(f"cannot reach Docker to {doing}: {exc}") from exc


def connect(config: SandboxConfig) -> docker.DockerClient:
    """A client for when none was passed in.

    The Docker SDK reads DOCKER_HOST and DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, the
    standard way to point at a (remote) daemon; pass a client to avoid that.
    """
    with docker_errors(config, "connect"):
        client = docker.from_env(
            timeout=config.docker_timeout_seconds,
            max_pool_size=config.max_concurrent_runs + config.pool_size + 4,
        )
        client.ping()
        return client


def user_ids(config: SandboxConfig) -> tuple[str, str]:
    uid, _, gid = config.user.partition(":")
    return uid, gid or uid


def tmpfs_options(size_bytes: int, inodes: int, mode: str, owner: tuple[str, str]) -> str:
    # nosuid/nodev/noexec: nothing written at run time can be executed directly.
    return (
        f"size={size_bytes},nr_inodes={inodes},mode={mode},uid={owner[0]},gid={owner[1]},"
        "nosuid,nodev,noexec"
    )


def tmpfs_mounts(config: SandboxConfig, empty_input: bool) -> dict[str, str]:
    """The size-limited tmpfs mounts: scratch, cwd, output (and an empty input dir)."""
    user = user_ids(config)
    inodes = config.tmpfs_inodes
    mounts = {
        "/tmp": tmpfs_options(config.tmp_size_mb * MIB, inodes, "1777", ROOT),
        "/work": tmpfs_options(config.work_size_mb * MIB, inodes, "0755", user),
        "/work/output": tmpfs_options(config.output_size_mb * MIB, inodes, "0700", user),
    }
    if empty_input:
        mounts[INPUT_DIR] = tmpfs_options(4096, 8, "0555", ROOT)
    return mounts


def host_config(
    client: docker.DockerClient, config: SandboxConfig, input_volume: bool
) -> dict[str, Any]:
    """The locked-down HostConfig every sandbox container gets.

    ``input_volume``: attachments arrive later through put_archive, which
    Docker only allows into a volume when the root filesystem is read-only;
    it is a tmpfs-backed local volume (mode 0555, root) removed with the
    container. Without attachments an empty read-only tmpfs takes its place.
    """
    tmpfs = tmpfs_mounts(config, empty_input=not input_volume)
    mounts = []
    if input_volume:
        size = config.max_input_total_bytes + 64 * 1024 * (config.max_input_files + 1)
        options = tmpfs_options(size, config.max_input_files + 8, "0555", ROOT)
        mounts.append(
            Mount(
                INPUT_DIR,
                None,
                type="volume",
                no_copy=True,
                labels={Labels(config.label_prefix).marker: "1"},
                driver_config=DriverConfig(
                    "local", {"type": "tmpfs", "device": "tmpfs", "o": options}
                ),
            )
        )
    memory = f"{config.memory_mb}m"
    fsize = config.file_size_limit_mb * MIB
    return dict(
        client.api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            privileged=False,
            pids_limit=config.pids,
            mem_limit=memory,
            memswap_limit=memory,  # equal to memory: no swap at all
            nano_cpus=int(config.cpus * 1e9),
            ulimits=[
                Ulimit(name="fsize", soft=fsize, hard=fsize),
                Ulimit(name="nofile", soft=config.open_files_limit, hard=config.open_files_limit),
                Ulimit(name="core", soft=0, hard=0),
            ],
            tmpfs=tmpfs,
            mounts=mounts or None,
            shm_size=f"{config.tmp_size_mb}m",
            ipc_mode="private",
            # The code could write to pid 1's stdout; with no log driver that
            # goes nowhere instead of filling the host's disk.
            log_config=LogConfig(type=LogConfig.types.NONE),
            runtime=config.runtime,
            # The supervisor exits after its report: Docker then removes the
            # container (and its volume) without another API call.
            auto_remove=True,
            init=False,
        )
    )


def create_container(
    client: docker.DockerClient,
    config: SandboxConfig,
    *,
    name: str,
    labels: dict[str, str],
    idle_seconds: float,
    input_volume: bool,
) -> str:
    """Create (not start) a sandbox container; a leftover with the same name is removed."""
    kwargs: dict[str, Any] = dict(
        image=config.image,
        entrypoint=["python3", "-I", "-S", "-c", SUPERVISOR_SOURCE],
        command=[f"{idle_seconds:.3f}", f"{config.kill_grace_seconds:.3f}"],
        name=name,
        user=config.user,
        working_dir="/work",
        hostname="sandbox",
        environment=SANDBOX_ENV,
        labels=labels,
        stdin_open=True,
        tty=False,
        host_config=host_config(client, config, input_volume),
    )
    with docker_errors(config, "create a container"):
        try:
            return str(client.api.create_container(**kwargs)["Id"])
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        free_name(client, name)
        return str(client.api.create_container(**kwargs)["Id"])


def start_container(client: docker.DockerClient, config: SandboxConfig, container: str) -> None:
    with docker_errors(config, "start the container"):
        client.api.start(container)


def rename_container(
    client: docker.DockerClient, config: SandboxConfig, container: str, name: str
) -> None:
    """Give a claimed pool container its execution's name (removing a leftover of it)."""
    with docker_errors(config, "rename the container"):
        try:
            client.api.rename(container, name)
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
        free_name(client, name)
        client.api.rename(container, name)


def put_inputs(
    client: docker.DockerClient, config: SandboxConfig, container: str, files: list[InputFile]
) -> None:
    with docker_errors(config, "copy the attachments in"):
        if not client.api.put_archive(container, INPUT_DIR, input_archive(files)):
            raise SandboxError("Docker did not accept the attachments")


def attach(client: docker.DockerClient, config: SandboxConfig, container: str) -> Any:
    with docker_errors(config, "attach to the container"):
        return client.api.attach_socket(
            container, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )


def remove_container(client: docker.DockerClient, container: str) -> None:
    """Kill and remove a container; quietly done if it is already gone or going."""
    try:
        client.api.remove_container(container, force=True, v=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        # 409: "removal already in progress" (auto-remove got there first).
        if exc.status_code != 409:
            raise


def free_name(client: docker.DockerClient, name: str) -> None:
    """Remove the container called ``name`` (an earlier attempt's) and wait until it is gone.

    Its removal may already be under way (auto-remove after it exited); the
    name is only free once that has finished.
    """
    remove_container(client, name)
    with contextlib.suppress(docker.errors.NotFound):  # already gone
        client.api.wait(name, condition="removed")


def oom_killed(client: docker.DockerClient, container: str) -> bool:
    """Whether Docker saw the container's memory limit kill something (False if gone)."""
    try:
        state = client.api.inspect_container(container).get("State") or {}
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False  # gone, or Docker is: either way nothing to report
    return bool(state.get("OOMKilled"))


def expiry_for_fresh(config: SandboxConfig, timeout: float) -> float:
    """When a fresh container has stopped on its own at the latest (unix time)."""
    return (
        time.time()
        + config.startup_grace_seconds
        + timeout
        + config.kill_grace_seconds
        + EXPIRY_SLACK_SECONDS
    )


def expiry_for_pool(config: SandboxConfig) -> float:
    """The same for a pool container: idle life plus the longest execution."""
    return (
        time.time()
        + config.pool_idle_seconds
        + config.max_timeout_seconds
        + config.kill_grace_seconds
        + EXPIRY_SLACK_SECONDS
    )
