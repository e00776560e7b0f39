"""Where a code step's CPU goes: machine CPU per unit of work, each at saturation, in one run.

Code-step throughput (bench_throughput) is CPU-bound on a small machine, so its
ratio to the churn ceiling is set by what each part costs, measured here from
the whole machine's busy time (``/proc/stat``: every process, the kernel's
share included), each part alone and saturating the machine:

* bare container  a hardened ``docker run --rm`` of ``print(1)``, 4 at once
                  (the ceiling's unit);
* sandbox alone   ``DockerSandbox.run`` of ``print(1)``, as many at once as a
                  worker runs code, warm pool included, no engine;
* engine floor    bare no-op Hatchet children chained in durable parents,
                  16 parents at once: the cheapest task the engine runs;
* code step       the product: tickets of three code steps submitted together,
                  fake model (whose server runs in this process and is counted).

A code step carries ``TASKS_PER_STEP`` tasks. With the engine at its floor the
best the product could do is ``bare / (sandbox + TASKS_PER_STEP * floor)`` of
the ceiling: the bound printed against bench_throughput's 0.7x target.
Sizes: COST_BENCH_RUNS (default 40), COST_BENCH_TICKETS (default 16).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from benchmarks.bench_agent import declare_noop, responder, timed_ticket
from benchmarks.bench_throughput import STEPS, TARGET, churn, code_steps, sandbox_runtime
from benchmarks.workers import running, support_worker
from sandbox import DockerSandbox, ExecutionRequest
from tests.fake_anthropic import FakeAnthropic
from tests.namespaces import new_namespace
from workflows.engine import connect
from workflows.settings import Settings
from workflows.support import build_support_workflow

# Per ticket: STEPS + 1 model turns, STEPS code runs, the reply, the resolution
# and the durable ticket task itself (triage is recorded with the ticket's input).
TASKS_PER_STEP = ((STEPS + 1) + STEPS + 1 + 1 + 1) / STEPS
FLOOR_PARENTS = 16

T = TypeVar("T")


def machine_busy_seconds() -> float:
    """CPU seconds the machine has been busy since boot (all cores; idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    # user, nice, system, irq, softirq: not idle or iowait, nor steal (another guest's) or
    # guest time (already counted in user and nice).
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


async def busy_during(work: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    """``work``'s result and the machine's busy CPU seconds while it ran."""
    before = machine_busy_seconds()
    result = await work()
    return result, machine_busy_seconds() - before


async def sandbox_alone(settings: Settings, runs: int) -> float:
    """Machine CPU seconds per ``print(1)`` run of the sandbox, ``max_concurrent_runs`` at once."""
    sandbox = DockerSandbox(settings.sandbox)
    await sandbox.start()
    try:
        assert await sandbox.pool.wait_ready(), "the warm pool did not fill"
        todo = iter(range(runs))
        ticket = f"cost-{uuid.uuid4().hex[:8]}"

        async def lane() -> None:
            for i in todo:
                request = ExecutionRequest(
                    code="print(1)", ticket_id=ticket, run_id=ticket, step_id=f"s{i}"
                )
                result = await sandbox.run(request)
                assert result.stdout == "1\n", result

        async def all_lanes() -> None:
            await asyncio.gather(*(lane() for _ in range(settings.sandbox.max_concurrent_runs)))

        _, cpu = await busy_during(all_lanes)
    finally:
        await sandbox.close()
    return cpu / runs


async def engine_floor(namespace: str) -> float:
    """Machine CPU seconds per bare no-op task, chains of them in durable parents at once."""
    hatchet = connect(Settings(), namespace=namespace)
    _, chain = declare_noop(hatchet)
    # The engine drops a run of a workflow it does not know yet: wait for the worker's.
    for _ in range(120):
        listed = await hatchet.workflows.aio_list(workflow_name=chain.name, limit=50)
        if any(w.name == chain.name for w in listed.rows or []):
            break
        await asyncio.sleep(0.5)
    else:
        raise TimeoutError(f"the no-op worker did not register {chain.name}")
    await chain.aio_run()  # warm-up: the worker, its queues

    async def parents() -> list[dict[str, list[float]]]:
        runs = [chain.aio_run() for _ in range(FLOOR_PARENTS)]
        return list(await asyncio.gather(*runs))

    results, cpu = await busy_during(parents)
    tasks = sum(len(r["seconds"]) + 1 for r in results)  # the children and their parent
    return cpu / tasks


async def warm_up(namespace: str) -> None:
    settings = Settings()
    hatchet = connect(settings, namespace=namespace)
    await timed_ticket(hatchet, build_support_workflow(hatchet, settings), 1, settings)


def main() -> None:
    settings = Settings()
    at_once = settings.sandbox.max_concurrent_runs
    runs = int(os.environ.get("COST_BENCH_RUNS", "40"))
    tickets = int(os.environ.get("COST_BENCH_TICKETS", "16"))
    runtime = sandbox_runtime(settings)

    rate, bare_cpu = asyncio.run(busy_during(lambda: churn(settings, runtime, runs, at_once)))
    bare = bare_cpu / runs
    alone = asyncio.run(sandbox_alone(settings, runs))
    namespace = new_namespace("cost")
    noop = [sys.executable, "-m", "benchmarks.bench_agent", "noop-worker"]
    with running(noop, namespace, {}):
        floor = asyncio.run(engine_floor(namespace))
    with FakeAnthropic() as fake:
        fake.responder = responder
        with support_worker(namespace, fake.env()):
            # Outside the measurement: the worker's start and its pool's first containers.
            asyncio.run(warm_up(namespace))
            steps_per_s, step_cpu = asyncio.run(
                busy_during(lambda: code_steps(namespace, tickets, warm_up=False))
            )
    step = step_cpu / (tickets * STEPS)
    at_floor = TASKS_PER_STEP * floor
    bound = bare / (alone + at_floor)
    verdict = "reaches" if bound >= TARGET else "short of"
    cores = os.cpu_count()
    print(f"where a code step's CPU goes ({runtime.name}, {at_once} at once, {cores} cores)")
    rows = [
        ("bare hardened container", bare, f"{rate:.2f} /s"),
        ("sandbox alone, per run", alone, f"{alone / bare:.2f}x bare"),
        ("engine floor, per bare no-op task", floor, ""),
        (f"a code step's {TASKS_PER_STEP:.2f} tasks at that floor", at_floor, ""),
        (
            "code step through the product",
            step,
            f"{steps_per_s:.2f} /s; orchestration about {max(step - alone, 0) * 1000:.0f} ms",
        ),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<40} {seconds * 1000:6.0f} ms" + (f"  ({note})" if note else ""))
    print(
        f"  {'best ratio with the engine at its floor':<40} {bound:6.3f}x  "
        f"({verdict} the {TARGET}x target: bare / (sandbox + tasks at the floor))"
    )


if __name__ == "__main__":
    main()
