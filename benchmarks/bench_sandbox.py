"""Sandbox latency against bare Docker, side by side in one run.

Four ways to run ``print(1)`` with the same image and the same lock-down flags:

* cold      DockerSandbox with no pool: a fresh container per call
* warm      DockerSandbox from its warm pool
* bare run  ``docker run --rm <flags> IMAGE python3 -c 'print(1)'`` (the CLI)
* bare exec ``docker exec CONTAINER python3 -c 'print(1)'`` into a running one

A fifth, informational row, "cold+rm", is the cold run plus the wait until
Docker's auto-remove has deleted the container (``docker run --rm`` includes
that removal; the sandbox returns as soon as the result is complete).

They are interleaved round-robin so drift (page cache, other load) hits all
four alike. Targets: cold <= 1.1x bare run, warm <= 1.5x bare exec (p50 and
p95). Iterations: SANDBOX_BENCH_ITERATIONS (default 20), after 2 warm-ups.
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

import docker.errors

from sandbox import DockerSandbox, ExecutionRequest, SandboxConfig
from sandbox.containers import MIB, SANDBOX_ENV, tmpfs_mounts

TARGETS = {("cold", "bare run"): 1.1, ("warm", "bare exec"): 1.5}
WARMUPS = 2


def bare_flags(config: SandboxConfig) -> list[str]:
    """The sandbox's lock-down as ``docker run`` flags (see sandbox/containers.py)."""
    memory = f"{config.memory_mb}m"
    fsize = config.file_size_limit_mb * MIB
    flags = [
        "--network", "none", "--read-only", "--user", config.user, "--workdir", "/work",
        "--hostname", "sandbox", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--pids-limit", str(config.pids), "--memory", memory, "--memory-swap", memory,
        "--cpus", str(config.cpus), "--ulimit", f"fsize={fsize}:{fsize}",
        "--ulimit", f"nofile={config.open_files_limit}:{config.open_files_limit}",
        "--ulimit", "core=0:0", "--shm-size", f"{config.tmp_size_mb}m", "--ipc", "private",
        "--log-driver", "none",
    ]  # fmt: skip
    for path, options in tmpfs_mounts(config, empty_input=True).items():
        flags += ["--tmpfs", f"{path}:{options}"]
    for key, value in SANDBOX_ENV.items():
        flags += ["--env", f"{key}={value}"]
    if config.runtime:
        flags += ["--runtime", config.runtime]
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


async def run_benchmark(iterations: int, config: SandboxConfig) -> dict[str, list[float]]:
    flags = bare_flags(config)
    cold = DockerSandbox(config.model_copy(update={"pool_size": 0}))
    warm = DockerSandbox(config.model_copy(update={"pool_size": max(config.pool_size, 1)}))
    await warm.start()
    idle = _docker("run", "-d", "--rm", *flags, config.image, "sleep", "3600").strip()
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

    modes: dict[str, Callable[[], Awaitable[None]]] = {
        "cold": lambda: sandbox_run(cold),
        "cold+rm": lambda: sandbox_run(cold, until_removed=True),
        "warm": lambda: sandbox_run(warm),
        "bare run": lambda: cli("run", "--rm", *flags, config.image, "python3", "-c", "print(1)"),
        "bare exec": lambda: cli("exec", idle, "python3", "-c", "print(1)"),
    }
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        for index in range(WARMUPS + iterations):
            for mode, action in modes.items():
                if mode == "warm":
                    # Measure the pool path, not a pool drained by the loop itself.
                    await warm.pool.wait_ready(1, within_seconds=60)
                await asyncio.sleep(0.2)  # let the last removal settle
                elapsed = await _timed(action)
                if index >= WARMUPS:
                    samples[mode].append(elapsed)
    finally:
        await warm.close()
        await cold.close()
        _docker("rm", "-f", idle)
    return samples


def _wait_removed(sandbox: DockerSandbox, name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):  # already gone
        sandbox.client().api.wait(name, condition="removed")


def report(samples: dict[str, list[float]]) -> str:
    lines = [f"{'mode':<10} {'p50 ms':>8} {'p95 ms':>8} {'n':>4}"]
    for mode, values in samples.items():
        p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
        lines.append(f"{mode:<10} {p50:8.1f} {p95:8.1f} {len(values):4d}")
    for (ours, bare), target in TARGETS.items():
        for label, fraction in (("p50", 0.5), ("p95", 0.95)):
            ratio = percentile(samples[ours], fraction) / percentile(samples[bare], fraction)
            verdict = "ok" if ratio <= target else "OVER TARGET"
            lines.append(f"{ours}/{bare} {label}: {ratio:.2f}x (target <= {target}x) {verdict}")
    return "\n".join(lines)


def main() -> None:
    iterations = int(os.environ.get("SANDBOX_BENCH_ITERATIONS", "20"))
    config = SandboxConfig()
    print(f"sandbox benchmark: print(1), {iterations} iterations per mode, image {config.image}")
    try:
        samples = asyncio.run(run_benchmark(iterations, config))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        sys.exit(f"sandbox benchmark: docker CLI failed: {exc}")
    print(report(samples))


if __name__ == "__main__":
    main()
