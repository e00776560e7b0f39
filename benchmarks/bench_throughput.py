"""Code-step throughput against the machine's container churn ceiling, in one run.

* ceiling  bare hardened containers: ``docker run --rm`` of the sandbox image
           with the sandbox's lock-down flags and runtime (create, start, wait,
           remove), ``print(1)``, as many at once as a worker runs code
           (``SUPPORT_AGENT_SANDBOX__MAX_CONCURRENT_RUNS``): containers/s.
* ours     tickets of three code steps each, all submitted together, through
           the real engine, worker and sandbox with the fake model answering
           instantly: code steps/s, from the first submission to the last
           ticket resolved (triage, model turns and replies included).

The ceiling is measured before and after, and their mean is the baseline, so
drift hits both alike. Target: ours >= 0.7x the ceiling. Sizes:
THROUGHPUT_BENCH_TICKETS (default 16), THROUGHPUT_BENCH_CONTAINERS (default 40).
"""

from __future__ import annotations

import asyncio
import os
import time

import docker

from benchmarks.bench_agent import responder, timed_ticket
from benchmarks.bench_sandbox import bare_flags
from benchmarks.workers import support_worker
from sandbox.containers import Runtime, resolve_runtime
from tests.fake_anthropic import FakeAnthropic
from tests.namespaces import new_namespace
from workflows.engine import connect
from workflows.models import TicketStatus
from workflows.settings import Settings
from workflows.support import build_support_workflow

TARGET = 0.7
STEPS = 3


async def churn(settings: Settings, runtime: Runtime, containers: int, at_once: int) -> float:
    """Bare hardened containers per second, ``at_once`` at a time."""
    flags = bare_flags(settings.sandbox, runtime)
    args = ["run", "--rm", *flags, settings.sandbox.image, "python3", "-c", "print(1)"]
    todo = iter(range(containers))

    async def lane() -> None:
        for _ in todo:
            process = await asyncio.create_subprocess_exec(
                "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await process.communicate()
            assert process.returncode == 0 and out == b"1\n", err

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(at_once)))
    return containers / (time.perf_counter() - started)


async def code_steps(namespace: str, tickets: int, *, warm_up: bool = True) -> float:
    """Code steps per second through the whole product (after a one-step warm-up ticket)."""
    settings = Settings()
    hatchet = connect(settings, namespace=namespace)
    workflow = build_support_workflow(hatchet, settings)
    if warm_up:
        await timed_ticket(hatchet, workflow, 1, settings)  # worker, pool, queues
    started = time.perf_counter()
    results = await asyncio.gather(
        *(timed_ticket(hatchet, workflow, STEPS, settings) for _ in range(tickets))
    )
    elapsed = time.perf_counter() - started
    assert all(o.status == TicketStatus.RESOLVED and o.scripts_run == STEPS for _, o in results), (
        results
    )
    return tickets * STEPS / elapsed


def sandbox_runtime(settings: Settings) -> Runtime:
    """The OCI runtime the sandbox's containers get (and the bare ones, to compare alike)."""
    client = docker.from_env()
    try:
        return resolve_runtime(client, settings.sandbox)
    finally:
        client.close()


def main() -> None:
    settings = Settings()
    at_once = settings.sandbox.max_concurrent_runs
    tickets = int(os.environ.get("THROUGHPUT_BENCH_TICKETS", "16"))
    containers = int(os.environ.get("THROUGHPUT_BENCH_CONTAINERS", "40"))
    runtime = sandbox_runtime(settings)
    namespace = new_namespace("tput")
    before = asyncio.run(churn(settings, runtime, containers, at_once))
    with FakeAnthropic() as fake:
        fake.responder = responder
        with support_worker(namespace, fake.env()):
            ours = asyncio.run(code_steps(namespace, tickets))
    after = asyncio.run(churn(settings, runtime, containers, at_once))
    ceiling = (before + after) / 2
    ratio = ours / ceiling
    verdict = "meets" if ratio >= TARGET else "misses"
    cores = os.cpu_count()
    print(f"code-step throughput ({runtime.name}, {at_once} code runs at once, {cores} cores)")
    print(
        f"  container churn ceiling (bare)      {ceiling:6.2f} containers/s "
        f"(before {before:.2f}, after {after:.2f}; {containers} each)"
    )
    print(
        f"  code steps through the product      {ours:6.2f} steps/s "
        f"({tickets} tickets x {STEPS} steps, submitted together)"
    )
    print(f"  ratio ours / ceiling                {ratio:6.2f}x  ({verdict} the {TARGET}x target)")


if __name__ == "__main__":
    main()
