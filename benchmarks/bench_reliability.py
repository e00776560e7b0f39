"""Load and parking: what waiting tickets cost, how fast they drain, and fairness under a burst.

Both run real worker processes on the running engine; replies, resolutions
and their times are taken from the signed webhooks the worker delivers to a
local receiver (the helpdesk's side of the wire).

* parking   RELIABILITY_BENCH_PARKED tickets (default 100), each with a log
            attachment the offline planner diagnoses in the sandbox, are
            submitted and left waiting for their customers. Measured: the
            worker's RSS (its process tree) and the engine database's size
            before and after, and the sandbox containers the parked tickets
            keep alive. Then every customer replies at once: all resolved?
            and the time until the last one is.
* fairness  FAIRNESS_BENCH_TICKETS tickets (default 60) from
            FAIRNESS_BENCH_CUSTOMERS customers (default 10), one customer
            holding FAIRNESS_BENCH_BIG of them (default 40, submitted first),
            all submitted at once. 'Claude' (the fake API, each answer taking
            FAIRNESS_BENCH_MODEL_SECONDS, default 0.5) runs one script and
            replies. Measured: none lost (every ticket replied to and
            resolved), and the other customers' time to first reply (p50,
            p95) against a run with the big customer absent.

The issue's sizes: RELIABILITY_BENCH_PARKED=1000; FAIRNESS_BENCH_TICKETS=200,
FAIRNESS_BENCH_CUSTOMERS=20, FAIRNESS_BENCH_BIG=150.
``python -m benchmarks.bench_reliability [parking|fairness]`` runs one.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.tickets import CustomerReply, Ticket
from agent.tools import REPLY, RUN_CODE
from benchmarks.workers import BENCH_RATE_LIMIT, FAKE_MODEL_ENV
from evidence.ingest import ingest_bytes
from tests.fake_anthropic import FakeAnthropic, FakeResponse, message, tool_use
from tests.helpers import SANDBOX_LABELS, engine_sql, labelled_containers, stop_process
from tests.namespaces import new_namespace
from tests.webhooks import TimedReceiver, new_secret
from workflows.client import push_reply, submit_ticket
from workflows.deps import open_evidence_store
from workflows.engine import connect
from workflows.models import TicketOutcome, TicketStatus
from workflows.settings import Settings
from workflows.support import SupportWorkflow, build_support_workflow

T = TypeVar("T")
APP_LOG = b"""2026-11-20T10:00:00Z INFO start
2026-11-20T10:00:01Z ERROR db: connection pool exhausted
2026-11-20T10:00:02Z ERROR db: connection pool exhausted
2026-11-20T10:00:03Z ERROR http: upstream timeout
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _gather_chunked(calls: list[Callable[[], Awaitable[T]]], size: int = 25) -> list[T]:
    results: list[T] = []
    for start in range(0, len(calls), size):
        results.extend(await asyncio.gather(*(c() for c in calls[start : start + size])))
    return results


async def _until(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until ``check`` held; fails after ``within``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what} did not happen within {within:g} s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def _spawn_worker(namespace: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"],
            env={**os.environ, **env, "HATCHET_CLIENT_NAMESPACE": namespace},
            stdout=out,
            stderr=out,
        )


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the SDK forks a listener)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def database_mb(settings: Settings) -> float | None:
    """The embedded engine's database size (None for an external engine or without psql)."""
    if settings.external_engine or shutil.which("psql") is None:
        return None
    try:
        rows = engine_sql(settings, "select pg_database_size(current_database())")
    except subprocess.CalledProcessError:
        return None
    return int(rows[0][0]) / 2**20


def containers_of(ticket_ids: set[str]) -> int:
    found = labelled_containers(SANDBOX_LABELS.ticket)
    return sum(c["Labels"].get(SANDBOX_LABELS.ticket) in ticket_ids for c in found)


# ----------------------------------------------------------------------------------- parking


async def parking(parked: int) -> dict[str, Any]:
    settings = Settings()
    namespace = new_namespace("rpark")
    secret = new_secret()
    log = Path(f"/tmp/bench-parking-{namespace}.log")
    with TimedReceiver(secret) as receiver:
        worker = _spawn_worker(
            namespace,
            {
                "SUPPORT_AGENT_LLM": "offline",
                # The planner is local: the shared model-call limit would only pace the parking.
                "SUPPORT_AGENT_LLM_REQUESTS_PER_MINUTE": "100000",
                **BENCH_RATE_LIMIT,
                "SUPPORT_AGENT_DELIVERY_URL": receiver.url,
                "SUPPORT_AGENT_DELIVERY_SECRET": secret,
                "SUPPORT_AGENT_WORKER_DURABLE_SLOTS": str(max(200, parked + 10)),
            },
            log,
        )
        try:
            hatchet = connect(settings, namespace=namespace)
            workflow = build_support_workflow(hatchet, settings)

            store = open_evidence_store(settings)

            def ticket(i: int | str) -> Ticket:
                ticket_id = f"P-{namespace[-6:]}-{i}"
                return Ticket(
                    ticket_id=ticket_id,
                    customer_email=f"customer{i}@example.com",
                    subject="Checkout errors since the deploy",
                    body="Checkout fails for some users. Log attached.",
                    attachments=ingest_bytes(store, {"app.log": APP_LOG}, ticket_id=ticket_id),
                )

            # Warm-up: the worker's imports, sandbox pool and queues, before the baseline.
            warm = ticket("warm")
            await submit_ticket(hatchet, workflow, warm, settings, reply_timeout_seconds=600)
            await _until(lambda: receiver.count("ticket.replied", [warm.ticket_id]) == 1, 300,
                         "the warm-up ticket's reply")  # fmt: skip
            await push_reply(hatchet, CustomerReply(ticket_id=warm.ticket_id, message="ok",
                                                    resolved=True))  # fmt: skip
            await _until(lambda: receiver.count("ticket.resolved", [warm.ticket_id]) == 1, 120,
                         "the warm-up ticket's resolution")  # fmt: skip
            await asyncio.sleep(5)
            rss_before, db_before = tree_rss_mb(worker.pid), database_mb(settings)

            tickets = [ticket(i) for i in range(parked)]
            ids = [t.ticket_id for t in tickets]
            started = time.monotonic()
            submit = functools.partial(
                submit_ticket, hatchet, workflow, settings=settings, reply_timeout_seconds=86400
            )
            refs = await _gather_chunked([functools.partial(submit, ticket=t) for t in tickets])
            await _until(
                lambda: receiver.count("ticket.replied", ids) == parked,
                60 + parked * 3, "every ticket's first reply",
            )  # fmt: skip
            park_seconds = time.monotonic() - started
            await asyncio.sleep(10)  # settle: the last scripts' containers are removed
            rss_parked, db_parked = tree_rss_mb(worker.pid), database_mb(settings)
            alive = containers_of(set(ids))

            reply_started = time.monotonic()
            replies = [CustomerReply(ticket_id=t, message="fixed", resolved=True) for t in ids]
            await _gather_chunked([functools.partial(push_reply, hatchet, r) for r in replies])
            await _until(
                lambda: receiver.count("ticket.resolved", ids) == parked,
                60 + parked * 2, "every ticket's resolution",
            )  # fmt: skip
            drain = time.monotonic() - reply_started
            outcomes: list[TicketOutcome] = await asyncio.wait_for(
                asyncio.gather(*(r.aio_result() for r in refs)), timeout=300
            )
            resolved = sum(o.status == TicketStatus.RESOLVED for o in outcomes)
            return {
                "parked": parked,
                "park_seconds": park_seconds,
                "rss_before": rss_before,
                "rss_parked": rss_parked,
                "db_before": db_before,
                "db_parked": db_parked,
                "containers_alive": alive,
                "resolved": resolved,
                "drain_seconds": drain,
                "scripts": sum(o.scripts_run for o in outcomes),
            }
        finally:
            stop_process(worker, timeout=60)


def parking_report(f: dict[str, Any]) -> str:
    n = f["parked"]
    rss = f["rss_parked"] - f["rss_before"]
    lines = [
        f"parking benchmark: {n} tickets parked waiting for their customers "
        f"(offline planner, {f['scripts']} scripts run in the sandbox before parking)",
        f"  all {n} parked (first reply sent) in  {f['park_seconds']:8.1f} s",
        f"  worker RSS (process tree)           {f['rss_before']:8.1f} MB -> "
        f"{f['rss_parked']:.1f} MB: +{rss:.1f} MB ({rss * 1024 / n:.0f} KB per parked ticket)",
    ]
    if f["db_before"] is not None and f["db_parked"] is not None:
        db = f["db_parked"] - f["db_before"]
        lines.append(
            f"  engine database                     {f['db_before']:8.1f} MB -> "
            f"{f['db_parked']:.1f} MB: +{db:.1f} MB ({db * 1024 / n:.0f} KB per parked ticket)"
        )
    else:
        lines.append("  engine database                     n/a (external engine, or no psql)")
    lines += [
        f"  sandbox containers alive for them   {f['containers_alive']:8d}",
        f"  every customer replies: resolved    {f['resolved']:8d} of {n}",
        f"  time to drain (last resolved)       {f['drain_seconds']:8.1f} s "
        f"({n / f['drain_seconds']:.1f} tickets/s)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- fairness


def fairness_responder(model_seconds: float) -> Callable[[dict[str, Any]], FakeResponse]:
    def respond(body: dict[str, Any]) -> FakeResponse:
        time.sleep(model_seconds)
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if turns == 0:
            code = {"language": "python", "code": "print('checked')", "purpose": "Check"}
            return message(tool_use(RUN_CODE, code))
        return message(tool_use(REPLY, {"message": "Done.", "resolved": True}))

    return respond


async def burst(
    hatchet: Any,
    workflow: SupportWorkflow,
    settings: Settings,
    receiver: TimedReceiver,
    tickets: list[Ticket],
) -> dict[str, float]:
    """Submit every ticket at once; each one's seconds to its first reply, once all resolved."""
    submitted: dict[str, float] = {}

    async def submit(t: Ticket) -> Any:
        submitted[t.ticket_id] = time.monotonic()
        return await submit_ticket(hatchet, workflow, t, settings, reply_timeout_seconds=3600)

    refs = await asyncio.gather(*(submit(t) for t in tickets))
    ids = [t.ticket_id for t in tickets]
    await _until(
        lambda: receiver.count("ticket.resolved", ids) == len(ids),
        120 + len(ids) * 5, "every ticket's resolution",
    )  # fmt: skip
    outcomes: list[TicketOutcome] = await asyncio.wait_for(
        asyncio.gather(*(r.aio_result() for r in refs)), timeout=300
    )
    lost = [
        o.ticket_id for o in outcomes if o.status != TicketStatus.RESOLVED or len(o.replies) != 1
    ]
    if lost:
        raise AssertionError(f"tickets not resolved with one reply: {lost}")
    first: dict[str, float] = {}
    for t in ids:
        at = receiver.at("ticket.replied", t)
        assert at is not None, t
        first[t] = at - submitted[t]
    return first


async def fairness(total: int, customers: int, big: int, model_seconds: float) -> dict[str, Any]:
    settings = Settings()
    namespace = new_namespace("fair")
    secret = new_secret()
    log = Path(f"/tmp/bench-fairness-{namespace}.log")
    with FakeAnthropic() as fake, TimedReceiver(secret) as receiver:
        fake.responder = fairness_responder(model_seconds)
        worker = _spawn_worker(
            namespace,
            {
                **fake.env(),
                **FAKE_MODEL_ENV,
                **BENCH_RATE_LIMIT,
                "SUPPORT_AGENT_DELIVERY_URL": receiver.url,
                "SUPPORT_AGENT_DELIVERY_SECRET": secret,
                "SUPPORT_AGENT_WORKER_DURABLE_SLOTS": str(max(200, total + 10)),
            },
            log,
        )
        try:
            hatchet = connect(settings, namespace=namespace)
            workflow = build_support_workflow(hatchet, settings)

            def ticket(customer: int, i: int) -> Ticket:
                return Ticket(
                    ticket_id=f"F-{uuid.uuid4().hex[:12]}",
                    customer_email=f"customer{customer}@example.com",
                    subject="Export broken",
                    body=f"Ticket {i} of customer {customer}: the CSV export fails.",
                )

            small = [ticket(1 + i % (customers - 1), i) for i in range(total - big)]
            large = [ticket(0, i) for i in range(big)]
            await burst(hatchet, workflow, settings, receiver, [ticket(1, -1)])  # warm-up
            alone = await burst(hatchet, workflow, settings, receiver, small)
            small_again = [ticket(1 + i % (customers - 1), i) for i in range(total - big)]
            mixed = await burst(hatchet, workflow, settings, receiver, [*large, *small_again])
            small_ids = {t.ticket_id for t in small_again}
            return {
                "total": total,
                "customers": customers,
                "big": big,
                "model_seconds": model_seconds,
                "alone": list(alone.values()),
                "with_big": [s for t, s in mixed.items() if t in small_ids],
                "big_times": [s for t, s in mixed.items() if t not in small_ids],
            }
        finally:
            stop_process(worker, timeout=60)


def fairness_report(f: dict[str, Any]) -> str:
    alone, with_big, big = f["alone"], f["with_big"], f["big_times"]
    p95_ratio = percentile(with_big, 0.95) / percentile(alone, 0.95)
    return "\n".join(
        [
            f"fairness benchmark: {f['total']} tickets at once from {f['customers']} customers, "
            f"one holding {f['big']} (submitted first); model answers take "
            f"{f['model_seconds']:g} s; one script each",
            f"  none lost: all {f['total']} resolved, each with exactly one reply",
            "  other customers' time to first reply   p50       p95",
            f"    big customer absent (baseline)    {statistics.median(alone):6.1f} s  "
            f"{percentile(alone, 0.95):6.1f} s   ({len(alone)} tickets)",
            f"    big customer present              {statistics.median(with_big):6.1f} s  "
            f"{percentile(with_big, 0.95):6.1f} s   ({len(with_big)} tickets)",
            f"    ratio (p95)                       {p95_ratio:6.2f}x",
            f"  the big customer's own tickets      {statistics.median(big):6.1f} s  "
            f"{percentile(big, 0.95):6.1f} s   ({len(big)} tickets)",
        ]
    )


def main(which: str = "all") -> None:
    if which in ("all", "parking"):
        parked = int(os.environ.get("RELIABILITY_BENCH_PARKED", "100"))
        print(parking_report(asyncio.run(parking(parked))))
    if which == "all":
        print()
    if which in ("all", "fairness"):
        total = int(os.environ.get("FAIRNESS_BENCH_TICKETS", "60"))
        customers = int(os.environ.get("FAIRNESS_BENCH_CUSTOMERS", "10"))
        big = int(os.environ.get("FAIRNESS_BENCH_BIG", "40"))
        model_seconds = float(os.environ.get("FAIRNESS_BENCH_MODEL_SECONDS", "0.5"))
        if not (customers >= 2 and 0 < big < total and total - big >= customers - 1):
            sys.exit("fairness benchmark: needs 2+ customers and each small one a ticket")
        print(fairness_report(asyncio.run(fairness(total, customers, big, model_seconds))))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
