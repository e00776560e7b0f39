"""The first ticket after an engine start, against the same ticket on a warm engine.

The ticket is the demo's kind: one log attachment, the offline planner, one
diagnostic script, a reply, and escalation after a 3 s reply timeout. It is
timed from submission to outcome, with a worker that has started (so what is
measured is the engine, not the worker's own start-up):

* warm   the engine has run tickets before (median of COLD_BENCH_WARM, default 3);
* cold   `support-agent engine stop`, `engine start`, a new worker, then the
         ticket (median of COLD_BENCH_REPEATS restarts, default 2).

It restarts the configured embedded engine (the one `make bench` started); with
an external engine (HATCHET_CLIENT_TOKEN) it is skipped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from hatchet_sdk import Hatchet

from agent.tickets import Ticket
from evidence.ingest import ingest_bytes
from tests.helpers import stop_process
from tests.namespaces import new_namespace
from workflows.client import submit_ticket
from workflows.deps import open_evidence_store
from workflows.engine import connect, running_engine, start_engine_background, stop_engine
from workflows.settings import Settings
from workflows.support import build_support_workflow

TARGET_RATIO = 1.5
REPLY_TIMEOUT_SECONDS = 3
_LOG = "\n".join(
    [f"2026-11-20T09:{m:02d}:00Z INFO GET /api/orders 200 12ms" for m in range(0, 40, 3)]
    + [
        f"2026-11-20T09:41:{s:02d}Z ERROR export worker: connection pool exhausted "
        f"(size=10, waiting={w})"
        for s, w in ((5, 31), (9, 38), (30, 52))
    ]
    + ["2026-11-20T09:44:00Z ERROR GET /api/exports/csv 500 30012ms timeout"] * 3
)


def _ticket(settings: Settings) -> Ticket:
    ticket_id = f"COLD-{uuid.uuid4().hex[:10]}"
    # The log goes into the evidence store the worker reads, as a submit puts it.
    log = {"api-server.log": _LOG.encode()}
    return Ticket(
        ticket_id=ticket_id,
        customer_email=f"c{uuid.uuid4().hex[:6]}@example.com",
        subject="Exports failing",
        body="CSV exports fail with timeouts since this morning. Server log attached.",
        attachments=ingest_bytes(open_evidence_store(settings), log, ticket_id=ticket_id),
    )


async def _one_ticket(settings: Settings, namespace: str) -> float:
    hatchet = connect(settings, namespace=namespace)
    workflow = build_support_workflow(hatchet, settings)
    started = time.perf_counter()
    ref = await submit_ticket(
        hatchet, workflow, _ticket(settings), settings, reply_timeout_seconds=REPLY_TIMEOUT_SECONDS
    )
    outcome = await ref.aio_result()
    elapsed = time.perf_counter() - started
    assert outcome.status.value == "escalated", outcome
    return elapsed


class _Worker:
    """An offline-planner worker in the benchmark's namespace, ready once the engine lists it."""

    def __init__(self, settings: Settings, namespace: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path(settings.state_dir) / f"bench-cold-worker-{namespace}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HATCHET_CLIENT_NAMESPACE": namespace, "SUPPORT_AGENT_LLM": "offline"}
        self.started = time.time()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker"], stdout=out, stderr=out, env=env
            )
        # Its start line comes before it registers (about 2 s on 2 cores); the
        # worker's own start-up is not what this benchmark measures.
        hatchet = connect(settings)
        deadline = time.monotonic() + 120
        while not self._registered(hatchet, f"{namespace}_"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark worker did not start; see {self.log}")
            time.sleep(0.1)

    def _registered(self, hatchet: Hatchet, prefix: str) -> bool:
        workers = hatchet.workers.list().rows or []
        return any(
            w.name.startswith(prefix)
            and w.status is not None
            and w.status.value == "ACTIVE"
            and w.metadata.created_at.timestamp() >= self.started - 1
            for w in workers
        )

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.log.unlink(missing_ok=True)


def _stop_engine(settings: Settings) -> None:
    """``engine stop``; the launcher is our child after a restart here, so reap it too
    (a zombie counts as alive and stop_engine would wait out its 60 s)."""
    info = running_engine(settings)
    if info is None:
        return
    os.kill(info.pid, signal.SIGTERM)
    try:
        os.waitpid(info.pid, 0)
    except ChildProcessError:  # not ours: the engine make bench started
        stop_engine(settings)
    # The launcher exits before the engine has let go of its ports; a new one
    # started meanwhile would find the old one answering its readiness probe.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        _answers(port) for port in (settings.engine_api_port, settings.engine_grpc_port)
    ):
        time.sleep(0.1)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def measure() -> dict[str, list[float]]:
    settings = Settings()
    namespace = new_namespace("cold")
    warm_n = int(os.environ.get("COLD_BENCH_WARM", "3"))
    repeats = int(os.environ.get("COLD_BENCH_REPEATS", "2"))
    start_engine_background(settings)
    worker = _Worker(settings, namespace)
    try:
        asyncio.run(_one_ticket(settings, namespace))  # warm-up: queues, pool, caches
        warm = [asyncio.run(_one_ticket(settings, namespace)) for _ in range(warm_n)]
        cold, starts = [], []
        for _ in range(repeats):
            worker.stop()
            _stop_engine(settings)
            started = time.perf_counter()
            start_engine_background(settings)
            starts.append(time.perf_counter() - started)
            worker = _Worker(settings, namespace)
            cold.append(asyncio.run(_one_ticket(settings, namespace)))
    finally:
        worker.stop()
    return {"warm": warm, "cold": cold, "engine_start": starts}


def main() -> None:
    if Settings().external_engine:
        print("cold-engine benchmark: skipped (external engine)")
        return
    figures = measure()
    warm = statistics.median(figures["warm"])
    cold = statistics.median(figures["cold"])
    ratio = cold / warm
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    sole = os.environ.get("HATCHET_ENGINE_SOLE_INSTANCE", "true")
    print(
        f"cold-engine benchmark (one log attachment, offline planner, reply timeout "
        f"{REPLY_TIMEOUT_SECONDS} s; HATCHET_ENGINE_SOLE_INSTANCE={sole})"
    )
    print(
        f"  ticket on a warm engine (baseline)    {warm:8.2f} s  (median of {len(figures['warm'])})"
    )
    print(
        f"  first ticket after engine start       {cold:8.2f} s  "
        f"(median of {len(figures['cold'])}: "
        + ", ".join(f"{c:.1f}" for c in figures["cold"])
        + ")"
    )
    start = statistics.median(figures["engine_start"])
    print(f"  engine start itself                   {start:8.2f} s")
    print(
        f"  ratio cold / warm                     {ratio:8.2f}x  "
        f"({verdict} the {TARGET_RATIO}x target)"
    )


if __name__ == "__main__":
    main()
