"""Agent orchestration overhead and ticket throughput, on the real engine and sandbox.

The model is the fake Messages API answering instantly, so what is measured
is everything except the model's latency and the code's own runtime:

* baseline   one bare no-op Hatchet child run, awaited from a durable parent
             (the cheapest durable step the engine offers);
* loop step  one agent step: an ``llm-turn`` child, turn planning, a
             ``run-code`` child in a real sandbox, and the transcript update.
             It is the slope of ticket time over the number of steps
             (tickets with 1 and with 6 code steps), minus the code's own
             runtime as the sandbox measured it;
* throughput tickets with three code steps each, submitted together.

Sizes: AGENT_BENCH_REPEATS (default 3), AGENT_BENCH_TICKETS (default 12).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from hatchet_sdk import Context, DurableContext, EmptyModel, Hatchet

from agent.tickets import Ticket
from agent.tools import REPLY, RUN_CODE
from tests.fake_anthropic import FakeAnthropic, FakeResponse, message, tool_use
from tests.namespaces import new_namespace
from workflows.client import submit_ticket
from workflows.engine import connect
from workflows.models import TicketOutcome
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
        for _ in range(CHAIN_LENGTH):
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


async def _timed_ticket(
    hatchet: Hatchet, workflow: Any, steps: int, settings: Settings
) -> tuple[float, TicketOutcome]:
    started = time.perf_counter()
    ref = await submit_ticket(
        hatchet, workflow, _ticket(steps), settings, reply_timeout_seconds=600
    )
    outcome = await ref.aio_result()
    return time.perf_counter() - started, outcome


async def measure(namespace: str) -> dict[str, float]:
    settings = Settings()
    hatchet = connect(settings, namespace=namespace)
    workflow = build_support_workflow(hatchet, settings)
    _, chain = declare_noop(hatchet)
    repeats = int(os.environ.get("AGENT_BENCH_REPEATS", "3"))
    tickets = int(os.environ.get("AGENT_BENCH_TICKETS", "12"))

    await _timed_ticket(hatchet, workflow, 1, settings)  # warm-up: workers, pool, queues
    await chain.aio_run()
    child = []
    for _ in range(repeats):
        child.extend((await chain.aio_run())["seconds"])
    baseline = statistics.median(child)

    short, long_, code = [], [], []
    for _ in range(repeats):
        for steps, bucket in ((1, short), (6, long_)):
            seconds, outcome = await _timed_ticket(hatchet, workflow, steps, settings)
            assert outcome.status == "resolved", outcome
            bucket.append(seconds)
            code.append(outcome.spent.sandbox_seconds / max(1, outcome.scripts_run))
    step = (statistics.median(long_) - statistics.median(short)) / 5
    overhead = step - statistics.median(code)

    started = time.perf_counter()
    results = await asyncio.gather(
        *(_timed_ticket(hatchet, workflow, 3, settings) for _ in range(tickets))
    )
    elapsed = time.perf_counter() - started
    assert all(o.status == "resolved" for _, o in results)
    return {
        "baseline": baseline,
        "step": step,
        "code": statistics.median(code),
        "overhead": overhead,
        "tickets": tickets,
        "elapsed": elapsed,
    }


def _spawn(args: list[str], namespace: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        env={**os.environ, **env, "HATCHET_CLIENT_NAMESPACE": namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def noop_worker() -> None:
    hatchet = connect(Settings())
    noop, chain = declare_noop(hatchet)
    hatchet.worker("bench-noop", slots=10, workflows=[noop, chain]).start()


def main() -> None:
    namespace = new_namespace("bench")
    with FakeAnthropic() as fake:
        fake.responder = responder
        env = {
            **fake.env(),
            "SUPPORT_AGENT_LLM": "claude",
            "SUPPORT_AGENT_LLM_REQUESTS_PER_MINUTE": "100000",
        }
        workers = [
            _spawn([sys.executable, "-m", "cli.main", "worker"], namespace, env),
            _spawn([sys.executable, "-m", "benchmarks.bench_agent", "noop-worker"], namespace, env),
        ]
        try:
            figures = asyncio.run(measure(namespace))
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
    ratio = figures["overhead"] / figures["baseline"]
    per_minute = figures["tickets"] / figures["elapsed"] * 60
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print("agent benchmark (fake model answering instantly, real engine and sandbox)")
    print(f"  bare no-op child run (baseline)     {figures['baseline'] * 1000:8.1f} ms")
    print(f"  one loop step, wall time            {figures['step'] * 1000:8.1f} ms")
    print(f"    of which the code's own runtime   {figures['code'] * 1000:8.1f} ms")
    print(f"  loop-step orchestration overhead    {figures['overhead'] * 1000:8.1f} ms")
    target = f"({verdict} the {TARGET_RATIO}x target)"
    print(f"  ratio overhead / baseline           {ratio:8.2f}x  {target}")
    print(
        f"  throughput, 3 code steps per ticket {per_minute:8.1f} tickets/min "
        f"({figures['tickets']} tickets in {figures['elapsed']:.1f} s, {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["noop-worker"]:
        noop_worker()
    else:
        main()
