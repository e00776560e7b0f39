"""How a sandbox container is created, filled, named and destroyed (blocking calls).

Every call here blocks on the Docker API; ``DockerSandbox`` runs them in its
thread pool. The locked-down settings live in ``host_config`` and nowhere
else, so a pool container and a fresh one can never differ.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DriverConfig, LogConfig, Mount, Ulimit

from sandbox import supervisor
from sandbox.archive import input_archive
from sandbox.config import AUTO_RUNTIME, MIB, SandboxConfig
from sandbox.errors import SandboxError
from sandbox.models import InputFile
from sandbox.naming import Labels

log = logging.getLogger(__name__)

GVISOR = "runsc"
# Under gVisor the host's pids limit is a backstop for the sandbox kernel's own
# threads (see pids_limits): this many host tasks per task of the code, plus a base.
GVISOR_HOST_PIDS_PER_TASK = 16
GVISOR_HOST_PIDS_BASE = 256
# Memory gVisor needs besides the code's (see memory_limit_mb): its kernel, and
# about 4 MB per forked Python process that Linux would share copy-on-write.
GVISOR_MEMORY_BASE_MB = 64
GVISOR_MEMORY_PER_TASK_MB = 4
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


def registered_runtimes(client: docker.DockerClient, config: SandboxConfig) -> dict[str, Any]:
    """The daemon's OCI runtimes (name: its settings) and, under "", its default's name."""
    with docker_errors(config, "list its runtimes"):
        info = client.info()
    runtimes = dict(info.get("Runtimes") or {})
    runtimes[""] = info.get("DefaultRuntime") or "runc"
    return runtimes


def is_gvisor(name: str, settings: Any) -> bool:
    """Whether a registered runtime is gVisor: called runsc, or its binary is."""
    path = settings.get("path", "") if isinstance(settings, dict) else ""
    return name == GVISOR or os.path.basename(str(path)) == GVISOR


@dataclass(frozen=True)
class Runtime:
    """A runtime the daemon has registered, by name, and whether it is gVisor."""

    name: str
    gvisor: bool

    def describe(self) -> str:
        kernel = "gVisor" if self.gvisor else "shares the host kernel"
        return f"{self.name} ({kernel})"


def resolve_runtime(client: docker.DockerClient, config: SandboxConfig) -> Runtime:
    """The runtime the config asks for; "auto": gVisor where registered, else the default.

    An explicit name the daemon does not know is a ``SandboxError`` now rather
    than at every container start.
    """
    runtimes = registered_runtimes(client, config)
    default = str(runtimes.pop(""))
    if config.runtime == AUTO_RUNTIME:
        gvisor = sorted(name for name, settings in runtimes.items() if is_gvisor(name, settings))
        if gvisor:
            return Runtime(GVISOR if GVISOR in gvisor else gvisor[0], True)
        log.warning(
            "sandbox: gVisor (runsc) is not registered with Docker; code runs under %s and"
            " shares the host kernel (see setup/docker.sh)",
            default,
        )
        return Runtime(default, is_gvisor(default, runtimes.get(default)))
    if config.runtime not in runtimes:
        raise SandboxError(
            f"OCI runtime {config.runtime!r} is not registered with Docker"
            f" (registered: {', '.join(sorted(runtimes)) or 'none'})"
        )
    return Runtime(config.runtime, is_gvisor(config.runtime, runtimes[config.runtime]))


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


def pids_limits(config: SandboxConfig, runtime: Runtime) -> tuple[int, list[Ulimit]]:
    """The host's pids limit of the container, and the rlimits that go with it.

    Under runc the container's pids cgroup counts exactly the code's processes
    and threads: it is the limit. Under gVisor it counts the sandbox kernel's
    own host threads and, on the ptrace platform, several host stub threads
    per process of the code (about 5.5 per sleeping process, measured); when
    it is reached, the sandbox kernel itself fails (gVisor 2022-12-19 panics
    in its ptrace platform) and the container vanishes without a report. So
    under gVisor the code's limit is RLIMIT_NPROC, which gVisor's kernel
    enforces for its own tasks (threads included: fork and clone fail with
    EAGAIN, as at a pids cgroup limit), and the host limit stays a backstop
    well above what that many tasks need. (Under runc, RLIMIT_NPROC would
    count the uid's processes across every container: it is not used there.)
    """
    if not runtime.gvisor:
        return config.pids, []
    host = config.pids * GVISOR_HOST_PIDS_PER_TASK + GVISOR_HOST_PIDS_BASE
    return host, [Ulimit(name="nproc", soft=config.pids, hard=config.pids)]


def memory_limit_mb(config: SandboxConfig, runtime: Runtime) -> int:
    """The container's memory limit (swap included: there is none).

    Under runc it is the code's. Under gVisor the same cgroup also holds
    gVisor's kernel, and gVisor (2022-12-19) has no OOM killer of its own:
    when the cgroup is full the host kills the sandbox kernel, and the
    container stops without a report. So gVisor gets room for itself and for
    ``pids`` processes on top of the code's ``memory_mb``: a fork bomb then
    stops at the process limit, with its output, as under runc.
    """
    if not runtime.gvisor:
        return config.memory_mb
    return config.memory_mb + GVISOR_MEMORY_BASE_MB + GVISOR_MEMORY_PER_TASK_MB * config.pids


def host_config(
    client: docker.DockerClient,
    config: SandboxConfig,
    input_volume: bool,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """The locked-down HostConfig every sandbox container gets.

    ``input_volume``: attachments arrive later through put_archive, which
    Docker only allows into a volume when the root filesystem is read-only;
    it is a tmpfs-backed local volume (mode 0555, root) removed with the
    container. Without attachments an empty read-only tmpfs takes its place.
    ``runtime``: the resolved runtime (None: resolve ``config.runtime`` now).
    """
    if runtime is None:
        runtime = resolve_runtime(client, config)
    pids, pids_ulimits = pids_limits(config, runtime)
    tmpfs = tmpfs_mounts(config, empty_input=not input_volume)
    mounts = []
    if input_volume:
        size = config.max_input_total_bytes + 64 * 1024 * (config.max_input_files + 1)
        # Inodes for the files and the directories archives unpack to.
        options = tmpfs_options(size, 2 * config.max_input_files + 16, "0555", ROOT)
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
    memory = f"{memory_limit_mb(config, runtime)}m"
    fsize = config.file_size_limit_mb * MIB
    return dict(
        client.api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            privileged=False,
            pids_limit=pids,
            mem_limit=memory,
            memswap_limit=memory,  # equal to memory: no swap at all
            nano_cpus=int(config.cpus * 1e9),
            ulimits=[
                Ulimit(name="fsize", soft=fsize, hard=fsize),
                Ulimit(name="nofile", soft=config.open_files_limit, hard=config.open_files_limit),
                Ulimit(name="core", soft=0, hard=0),
                *pids_ulimits,
            ],
            tmpfs=tmpfs,
            mounts=mounts or None,
            shm_size=f"{config.tmp_size_mb}m",
            ipc_mode="private",
            # The code could write to pid 1's stdout; with no log driver that
            # goes nowhere instead of filling the host's disk.
            log_config=LogConfig(type=LogConfig.types.NONE),
            runtime=runtime.name,
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
    runtime: Runtime | None = None,
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
        host_config=host_config(client, config, input_volume, runtime),
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


def check_still_waiting(client: docker.DockerClient, config: SandboxConfig, container: str) -> None:
    """After a copy of inputs: the supervisor must still be waiting for its request.

    A copy slower than allowed for outlasts the supervisor's wait; attaching
    to the stopped container would then hang until the run's deadline and
    end as a timeout of code that never ran.
    """
    with docker_errors(config, "inspect the container"):
        try:
            state = client.api.inspect_container(container).get("State") or {}
        except docker.errors.NotFound:  # stopped, and auto-removed already
            state = {}
    if not state.get("Running"):
        raise SandboxError(
            "the container stopped waiting for its code while the attachments were copied in "
            "(a copy slower than the sandbox allows for); retry"
        )


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
