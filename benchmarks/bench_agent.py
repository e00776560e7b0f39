"""Agent loop-step orchestration overhead, on the real engine and sandbox.

The model is the fake Messages API answering instantly. Compared:

* baseline   two bare no-op Hatchet child runs, each awaited from a durable
             parent (the cheapest durable step the engine offers; a loop step
             is two children);
* loop step  one agent step: an ``llm-turn`` child, turn planning, a
             ``run-code`` child in a real sandbox, and the transcript update.
             Its orchestration overhead is the slope, over tickets of 1 and 6
             code steps, of ticket time minus what the model turns and code
             runs spent executing as the engine timed them (the model's answer,
             the sandbox's container and the code are their work, measured
             against bare Docker by bench_sandbox).

Where the overhead goes is printed too, per child round trip and against the
bare chain's: the parent's turn (a child finished -> the next one created)
and the engine's scheduling (created -> started).

Target: overhead <= 1.5x the baseline. Throughput is bench_throughput's.
Size: AGENT_BENCH_REPEATS (default 5).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hatchet_sdk import Context, DurableContext, EmptyModel, Hatchet
from hatchet_sdk.clients.rest.models.v1_task_summary import V1TaskSummary

from agent.tickets import Ticket
from agent.tools import REPLY, RUN_CODE
from benchmarks.workers import running, support_worker
from tests.fake_anthropic import FakeAnthropic, FakeResponse, message, tool_use
from tests.namespaces import new_namespace
from workflows.client import submit_ticket
from workflows.engine import connect
from workflows.models import TicketOutcome, TicketStatus
from workflows.settings import Settings
from workflows.support import build_support_workflow

CHAIN_LENGTH = 20
TARGET_RATIO = 1.5
_STEPS = re.compile(r"New support ticket B(\d+)-")


def declare_noop(hatchet: Hatchet) -> tuple[Any, Any]:
    @hatchet.task(name="bench-noop", execution_timeout=timedelta(seconds=30))
    async def bench_noop(_: EmptyModel, ctx: Context) -> dict[str, str]:
        return {}

    @hatchet.durable_task(name="bench-chain", execution_timeout=timedelta(minutes=10))
    async def bench_chain(_: EmptyModel, ctx: DurableContext) -> dict[str, list[float]]:
        # Wall-clock timing inside a durable task is non-deterministic; it is
        # only reported here, and this task is never replayed.
        times = []
        for _step in range(CHAIN_LENGTH):
            started = time.perf_counter()
            await bench_noop.aio_run()
            times.append(time.perf_counter() - started)
        return {"seconds": times}

    return bench_noop, bench_chain


def responder(body: dict[str, Any]) -> FakeResponse:
    """Instant 'Claude': N run_code turns (N from the ticket id), then a closing reply."""
    text = str(body["messages"][0]["content"])
    match = _STEPS.search(text)
    steps = int(match.group(1)) if match else 1
    turns_so_far = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if turns_so_far < steps:
        code = {"language": "python", "code": "print(1)", "purpose": f"step {turns_so_far + 1}"}
        return message(tool_use(RUN_CODE, code))
    return message(tool_use(REPLY, {"message": "Done.", "resolved": True}))


def _ticket(steps: int) -> Ticket:
    return Ticket(
        ticket_id=f"B{steps}-{uuid.uuid4().hex[:10]}",
        customer_email=f"c{uuid.uuid4().hex[:6]}@example.com",
        subject="Benchmark",
        body="Benchmark ticket.",
    )


async def timed_ticket(
    hatchet: Hatchet, workflow: Any, steps: int, settings: Settings
) -> tuple[float, TicketOutcome]:
    seconds, outcome, _ = await _timed_run(hatchet, workflow, steps, settings)
    return seconds, outcome


async def _timed_run(
    hatchet: Hatchet, workflow: Any, steps: int, settings: Settings
) -> tuple[float, TicketOutcome, str]:
    started = time.perf_counter()
    ref = await submit_ticket(
        hatchet, workflow, _ticket(steps), settings, reply_timeout_seconds=600
    )
    outcome = await ref.aio_result()
    return time.perf_counter() - started, outcome, ref.workflow_run_id


@dataclass
class ChildTimes:
    """A run's children as the engine timed them."""

    work: float  # seconds the model turns and code runs spent executing
    gaps: list[float]  # each child's creation after the previous one finished: the parent's turn
    queued: list[float]  # each child's creation to its start: the engine's scheduling


def child_times(rows: list[V1TaskSummary]) -> ChildTimes:
    ordered = sorted(rows, key=lambda t: t.created_at)
    return ChildTimes(
        work=sum(t.duration or 0 for t in ordered) / 1000,
        gaps=[
            (task.created_at - previous.finished_at).total_seconds()
            for previous, task in itertools.pairwise(ordered)
            if previous.finished_at is not None
        ],
        queued=[(t.started_at - t.created_at).total_seconds() for t in ordered if t.started_at],
    )


def task_name(task: V1TaskSummary) -> str:
    """The task's name without its namespace prefix."""
    return (task.workflow_name or "").split("_", 1)[-1]


async def listed_children(
    hatchet: Hatchet, run_id: str, wanted: dict[str, int]
) -> list[V1TaskSummary]:
    """The run's finished children once ``wanted`` (name: count) are all listed.

    The engine's run list is updated about every second, so this waits for them.
    """
    for _ in range(100):
        listed = await hatchet.runs.aio_list(
            parent_task_external_id=run_id, include_payloads=False, limit=200
        )
        done = [t for t in listed.rows if t.duration is not None]
        names = [task_name(t) for t in done]
        if all(names.count(name) >= n for name, n in wanted.items()):
            return done
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the engine did not list the children of {run_id}")


async def children_work(hatchet: Hatchet, run_id: str, steps: int) -> ChildTimes:
    """The ticket's model turns and code runs, as the engine timed them.

    Their own work (the model's answer, the sandbox's container and the code)
    is what the loop step does, not what orchestrating it costs.
    """
    wanted = {"llm-turn": steps + 1, "run-code": steps}
    done = await listed_children(hatchet, run_id, wanted)
    # The gaps and queueing of every child, the reply and resolution included.
    everything = child_times(done)
    work = child_times([t for t in done if task_name(t) in wanted]).work
    return ChildTimes(work, everything.gaps, everything.queued)


async def measure(namespace: str) -> dict[str, float]:
    settings = Settings()
    hatchet = connect(settings, namespace=namespace)
    workflow = build_support_workflow(hatchet, settings)
    _, chain = declare_noop(hatchet)
    repeats = int(os.environ.get("AGENT_BENCH_REPEATS", "5"))

    await timed_ticket(hatchet, workflow, 1, settings)  # warm-up: workers, pool, queues
    await chain.aio_run()
    child = []
    bare_gaps: list[float] = []
    bare_queued: list[float] = []
    for _ in range(repeats):
        ref = await chain.aio_run(wait_for_result=False)
        child.extend((await ref.aio_result())["seconds"])
        rows = await listed_children(hatchet, ref.workflow_run_id, {"bench-noop": CHAIN_LENGTH})
        bare = child_times(rows)
        bare_gaps += bare.gaps
        bare_queued += bare.queued
    baseline = statistics.median(child)

    walls: dict[int, list[float]] = {1: [], 6: []}
    orchestration: dict[int, list[float]] = {1: [], 6: []}
    gaps: list[float] = []
    queued: list[float] = []
    for _ in range(repeats):
        for steps in (1, 6):
            seconds, outcome, run_id = await _timed_run(hatchet, workflow, steps, settings)
            assert outcome.status == TicketStatus.RESOLVED and outcome.scripts_run == steps, outcome
            times = await children_work(hatchet, run_id, steps)
            walls[steps].append(seconds)
            orchestration[steps].append(seconds - times.work)
            if steps == 6:
                gaps += times.gaps
                queued += times.queued

    def slope(samples: dict[int, list[float]]) -> float:
        return (statistics.median(samples[6]) - statistics.median(samples[1])) / 5

    step, overhead = slope(walls), slope(orchestration)
    return {
        "baseline": baseline,
        "step": step,
        "work": step - overhead,
        "overhead": overhead,
        "gap": statistics.median(gaps),
        "queued": statistics.median(queued),
        "bare_gap": statistics.median(bare_gaps),
        "bare_queued": statistics.median(bare_queued),
    }


def noop_worker() -> None:
    settings = Settings()
    hatchet = connect(settings)
    noop, chain = declare_noop(hatchet)
    # As many slots as a support worker: the engine refills its view of a worker's
    # free slots only every 1-1.5 s, so a 10-slot worker stalls every 10th child.
    hatchet.worker("bench-noop", slots=settings.worker_slots, workflows=[noop, chain]).start()


def main() -> None:
    namespace = new_namespace("bench")
    with FakeAnthropic() as fake:
        fake.responder = responder
        noop = [sys.executable, "-m", "benchmarks.bench_agent", "noop-worker"]
        with support_worker(namespace, fake.env()), running(noop, namespace, {}):
            figures = asyncio.run(measure(namespace))
    two_children = 2 * figures["baseline"]
    ratio = figures["overhead"] / two_children
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print("agent loop step (fake model answering instantly, real engine and sandbox)")
    print(f"  bare no-op child run                {figures['baseline'] * 1000:8.1f} ms")
    print(f"  two bare child runs (baseline)      {two_children * 1000:8.1f} ms")
    print(f"  one loop step, wall time            {figures['step'] * 1000:8.1f} ms")
    print(
        f"    of which the model turn and code  {figures['work'] * 1000:8.1f} ms "
        "(as the engine timed them)"
    )
    print(f"  loop-step orchestration overhead    {figures['overhead'] * 1000:8.1f} ms")
    print(
        f"  ratio overhead / baseline           {ratio:8.2f}x  "
        f"({verdict} the {TARGET_RATIO}x target)"
    )
    print("  where a child's round trip goes (medians; ours over the 6-step tickets)")
    for label, ours, bare in [
        ("the parent's turn (finished -> next created)", "gap", "bare_gap"),
        ("the engine's scheduling (created -> started)", "queued", "bare_queued"),
    ]:
        print(
            f"    {label:<46} {figures[ours] * 1000:6.1f} ms (bare {figures[bare] * 1000:5.1f} ms)"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["noop-worker"]:
        noop_worker()
    else:
        main()
