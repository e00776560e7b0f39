"""Sandbox latency against bare Docker, under runc and gVisor, side by side in one run.

For each runtime, four ways to run ``print(1)`` with the same image and the
same lock-down flags:

* cold      DockerSandbox with no pool: a fresh container per call
* warm      DockerSandbox from its warm pool
* bare run  ``docker run --rm <flags> IMAGE python3 -c 'print(1)'`` (the CLI)
* bare exec ``docker exec CONTAINER python3 -c 'print(1)'`` into a running one

A fifth, informational row, "cold+rm", is the cold run plus the wait until
Docker's auto-remove has deleted the container (``docker run --rm`` includes
that removal; the sandbox returns as soon as the result is complete).

Every mode of both runtimes is interleaved round-robin, so drift (page cache,
other load) hits all alike. Targets, per runtime: cold <= 1.1x its bare run,
warm <= 1.5x its bare exec (p50 and p95). The last column is what gVisor
costs: its figure over runc's. A runtime the daemon lacks is left out, with a
line saying so. Iterations: SANDBOX_BENCH_ITERATIONS (default 20), after 2
warm-ups; SANDBOX_BENCH_RUNTIMES (default "runc,runsc").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import docker
import docker.errors

from sandbox import DockerSandbox, ExecutionRequest, SandboxConfig
from sandbox.config import MIB
from sandbox.containers import (
    SANDBOX_ENV,
    Runtime,
    memory_limit_mb,
    pids_limits,
    tmpfs_mounts,
)
from workflows.settings import Settings

TARGETS = {("cold", "bare run"): 1.1, ("warm", "bare exec"): 1.5}
WARMUPS = 2


def bare_flags(config: SandboxConfig, runtime: Runtime) -> list[str]:
    """The sandbox's lock-down as ``docker run`` flags (see sandbox/containers.py)."""
    memory = f"{memory_limit_mb(config, runtime)}m"
    pids, pids_ulimits = pids_limits(config, runtime)
    fsize = config.file_size_limit_mb * MIB
    flags = [
        "--network", "none", "--read-only", "--user", config.user, "--workdir", "/work",
        "--hostname", "sandbox", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--pids-limit", str(pids), "--memory", memory, "--memory-swap", memory,
        "--cpus", str(config.cpus), "--ulimit", f"fsize={fsize}:{fsize}",
        "--ulimit", f"nofile={config.open_files_limit}:{config.open_files_limit}",
        "--ulimit", "core=0:0", "--shm-size", f"{config.tmp_size_mb}m", "--ipc", "private",
        "--log-driver", "none", "--runtime", runtime.name,
    ]  # fmt: skip
    for ulimit in pids_ulimits:
        flags += ["--ulimit", f"{ulimit['Name']}={ulimit['Soft']}:{ulimit['Hard']}"]
    for path, options in tmpfs_mounts(config, empty_input=True).items():
        flags += ["--tmpfs", f"{path}:{options}"]
    for key, value in SANDBOX_ENV.items():
        flags += ["--env", f"{key}={value}"]
    return flags


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=True)
    return done.stdout


async def _timed(action: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


Samples = dict[tuple[str, str], list[float]]  # (runtime, mode): milliseconds


async def run_benchmark(iterations: int, config: SandboxConfig, runtimes: list[str]) -> Samples:
    ticket = f"bench-{uuid.uuid4().hex[:8]}"
    counter = iter(range(10**9))

    def request() -> ExecutionRequest:
        return ExecutionRequest(
            code="print(1)", ticket_id=ticket, run_id="bench", step_id=f"s{next(counter)}"
        )

    async def sandbox_run(sandbox: DockerSandbox, until_removed: bool = False) -> None:
        result = await sandbox.run(request())
        assert result.stdout == "1\n", result
        if until_removed:
            await asyncio.to_thread(_wait_removed, sandbox, result.container_name)

    async def cli(*args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        assert process.returncode == 0 and out == b"1\n", err

    modes: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {}
    pools: dict[str, DockerSandbox] = {}
    sandboxes: list[DockerSandbox] = []
    idle: list[str] = []
    try:
        for name in runtimes:
            runtime_config = config.model_copy(update={"runtime": name})
            cold = DockerSandbox(runtime_config.model_copy(update={"pool_size": 0}))
            warm = DockerSandbox(
                runtime_config.model_copy(update={"pool_size": max(config.pool_size, 1)})
            )
            sandboxes += [cold, warm]
            await warm.start()
            runtime = await asyncio.to_thread(cold.resolve_runtime)
            flags = bare_flags(config, runtime)
            idle.append(_docker("run", "-d", "--rm", *flags, config.image, "sleep", "3600").strip())
            pools[name] = warm
            modes.update(_modes(name, cold, warm, flags, config.image, idle[-1], sandbox_run, cli))
        samples: Samples = {key: [] for key in modes}
        for index in range(WARMUPS + iterations):
            for (name, mode), action in modes.items():
                if mode == "warm":
                    # Measure the pool path, not a pool drained by the loop itself.
                    await pools[name].pool.wait_ready(1, within_seconds=60)
                await asyncio.sleep(0.2)  # let the last removal settle
                elapsed = await _timed(action)
                if index >= WARMUPS:
                    samples[(name, mode)].append(elapsed)
        return samples
    finally:
        for sandbox in sandboxes:
            await sandbox.close()
        for container in idle:
            _docker("rm", "-f", container)


def _modes(
    name: str,
    cold: DockerSandbox,
    warm: DockerSandbox,
    flags: list[str],
    image: str,
    idle: str,
    sandbox_run: Callable[..., Awaitable[None]],
    cli: Callable[..., Awaitable[None]],
) -> dict[tuple[str, str], Callable[[], Awaitable[None]]]:
    return {
        (name, "cold"): lambda: sandbox_run(cold),
        (name, "cold+rm"): lambda: sandbox_run(cold, until_removed=True),
        (name, "warm"): lambda: sandbox_run(warm),
        (name, "bare run"): lambda: cli("run", "--rm", *flags, image, "python3", "-c", "print(1)"),
        (name, "bare exec"): lambda: cli("exec", idle, "python3", "-c", "print(1)"),
    }


def _wait_removed(sandbox: DockerSandbox, name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):  # already gone
        sandbox.client().api.wait(name, condition="removed")


def report(samples: Samples) -> str:
    runtimes = list(dict.fromkeys(name for name, _ in samples))
    modes = list(dict.fromkeys(mode for _, mode in samples))
    head = f"{'mode':<10}"
    head += "".join(f" {name + ' p50':>10} {name + ' p95':>10}" for name in runtimes)
    gvisor = "runsc" in runtimes and "runc" in runtimes
    lines = [head + (f" {'runsc/runc p50':>15}" if gvisor else "")]
    for mode in modes:
        line = f"{mode:<10}"
        for name in runtimes:
            values = samples[(name, mode)]
            line += f" {percentile(values, 0.5):10.1f} {percentile(values, 0.95):10.1f}"
        if gvisor:
            ratio = percentile(samples[("runsc", mode)], 0.5) / percentile(
                samples[("runc", mode)], 0.5
            )
            line += f" {ratio:14.2f}x"
        lines.append(line)
    lines.append(f"(milliseconds, n={len(next(iter(samples.values())))} per mode)")
    for name in runtimes:
        for (ours, bare), target in TARGETS.items():
            for label, fraction in (("p50", 0.5), ("p95", 0.95)):
                ratio = percentile(samples[(name, ours)], fraction) / percentile(
                    samples[(name, bare)], fraction
                )
                verdict = "ok" if ratio <= target else "OVER TARGET"
                lines.append(
                    f"{name} {ours}/{bare} {label}: {ratio:.2f}x (target <= {target}x) {verdict}"
                )
    return "\n".join(lines)


def available_runtimes(wanted: list[str]) -> list[str]:
    """The wanted runtimes the daemon has, saying which it lacks."""
    registered = docker.from_env().info().get("Runtimes") or {}
    for name in wanted:
        if name not in registered:
            print(f"sandbox benchmark: runtime {name!r} is not registered with Docker; left out")
    return [name for name in wanted if name in registered]


def main() -> None:
    iterations = int(os.environ.get("SANDBOX_BENCH_ITERATIONS", "20"))
    wanted = os.environ.get("SANDBOX_BENCH_RUNTIMES", "runc,runsc").split(",")
    config = Settings().sandbox
    runtimes = available_runtimes([name.strip() for name in wanted if name.strip()])
    print(
        f"sandbox benchmark: print(1), {iterations} iterations per mode, image {config.image},"
        f" runtimes {', '.join(runtimes)}"
    )
    try:
        samples = asyncio.run(run_benchmark(iterations, config, runtimes))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        sys.exit(f"sandbox benchmark: docker CLI failed: {exc}")
    print(report(samples))


if __name__ == "__main__":
    main()
