"""Parking and resuming many tickets at once, on the real engine.

The model is the fake Messages API answering instantly with a question to the
customer (no code runs), and the helpdesk is a local Standard Webhooks
receiver, so each ticket's milestones are the signed events it receives:

* parking   N tickets submitted at once, until each has its first reply sent
            (``ticket.replied``): triage, one model turn, send-reply, then the
            durable wait for the customer;
* resuming  the N customers all reply at once (marking the ticket solved),
            until each ticket is resolved (``ticket.resolved``): the wait wakes,
            receive-reply and resolve-ticket run.

Reported as tickets/s (N over the time from the first submission or reply to
the last event) and p95 per ticket. Size: PARK_BENCH_TICKETS (default 100).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

from agent.tickets import CustomerReply, Ticket
from agent.tools import REPLY
from benchmarks.workers import support_worker
from tests.fake_anthropic import FakeAnthropic, FakeResponse, message, tool_use
from tests.namespaces import new_namespace
from tests.webhooks import TimedReceiver, new_secret
from workflows.client import push_reply, submit_ticket
from workflows.engine import connect
from workflows.settings import Settings
from workflows.support import build_support_workflow

TARGET_PARKED_PER_S = 5.0
TARGET_RESUMED_PER_S = 10.0


def responder(body: dict[str, Any]) -> FakeResponse:
    return message(tool_use(REPLY, {"message": "Which version do you run?", "resolved": False}))


async def _wait_all(receiver: TimedReceiver, kind: str, ids: list[str], within: float) -> None:
    deadline = time.monotonic() + within
    while receiver.count(kind, ids) < len(ids):
        if time.monotonic() > deadline:
            got = receiver.count(kind, ids)
            raise TimeoutError(f"only {got} of {len(ids)} tickets got {kind} in {within:g} s")
        await asyncio.sleep(0.1)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def measure(namespace: str, receiver: TimedReceiver) -> dict[str, float]:
    settings = Settings()
    hatchet = connect(settings, namespace=namespace)
    workflow = build_support_workflow(hatchet, settings)
    n = int(os.environ.get("PARK_BENCH_TICKETS", "100"))

    async def submit(ticket: Ticket) -> float:
        started = time.monotonic()
        await submit_ticket(hatchet, workflow, ticket, settings, reply_timeout_seconds=3600)
        return started

    # Warm-up: one ticket parked and resumed (queues, strategies, worker).
    warm = Ticket(
        ticket_id=f"PW-{uuid.uuid4().hex[:10]}",
        customer_email="warm@example.com",
        subject="Warm-up",
        body="Warm-up ticket.",
    )
    await submit(warm)
    await _wait_all(receiver, "ticket.replied", [warm.ticket_id], 120)
    await push_reply(hatchet, CustomerReply(ticket_id=warm.ticket_id, message="ok", resolved=True))
    await _wait_all(receiver, "ticket.resolved", [warm.ticket_id], 120)

    tickets = [
        Ticket(
            ticket_id=f"P-{uuid.uuid4().hex[:12]}",
            customer_email=f"c{i % 20}@example.com",  # 20 customers, 5 tickets each at 100
            subject="Parking",
            body="Exports fail since this morning.",
        )
        for i in range(n)
    ]
    ids = [t.ticket_id for t in tickets]
    submitted = await asyncio.gather(*(submit(t) for t in tickets))
    await _wait_all(receiver, "ticket.replied", ids, 1800)
    park_start = min(submitted)
    parked = [
        receiver.first[("ticket.replied", i)] - s for i, s in zip(ids, submitted, strict=True)
    ]
    park_elapsed = max(receiver.first[("ticket.replied", i)] for i in ids) - park_start

    async def reply(ticket_id: str) -> float:
        started = time.monotonic()
        answer = CustomerReply(ticket_id=ticket_id, message="Fixed, thanks.", resolved=True)
        await push_reply(hatchet, answer)
        return started

    pushed = await asyncio.gather(*(reply(i) for i in ids))
    await _wait_all(receiver, "ticket.resolved", ids, 1800)
    resumed = [receiver.first[("ticket.resolved", i)] - s for i, s in zip(ids, pushed, strict=True)]
    resume_elapsed = max(receiver.first[("ticket.resolved", i)] for i in ids) - min(pushed)
    return {
        "n": n,
        "park_rate": n / park_elapsed,
        "park_p95": _p95(parked),
        "park_p50": statistics.median(parked),
        "resume_rate": n / resume_elapsed,
        "resume_p95": _p95(resumed),
        "resume_p50": statistics.median(resumed),
    }


def main() -> None:
    namespace = new_namespace("park")
    secret = new_secret()
    with FakeAnthropic() as fake, TimedReceiver(secret) as receiver:
        fake.responder = responder
        env = {
            **fake.env(),
            "SUPPORT_AGENT_DELIVERY_URL": receiver.url,
            "SUPPORT_AGENT_DELIVERY_SECRET": secret,
        }
        with support_worker(namespace, env):
            f = asyncio.run(measure(namespace, receiver))
    park_ok = "meets" if f["park_rate"] >= TARGET_PARKED_PER_S else "misses"
    resume_ok = "meets" if f["resume_rate"] >= TARGET_RESUMED_PER_S else "misses"
    cores = os.cpu_count()
    print(f"parking and resuming ({f['n']:.0f} tickets at once, fake model, {cores} cores)")
    print(
        f"  parked (submitted -> first reply sent) {f['park_rate']:6.2f} tickets/s  "
        f"p50 {f['park_p50']:.1f} s, p95 {f['park_p95']:.1f} s  "
        f"({park_ok} the {TARGET_PARKED_PER_S:g}/s target)"
    )
    print(
        f"  resumed (customer reply -> resolved)   {f['resume_rate']:6.2f} tickets/s  "
        f"p50 {f['resume_p50']:.1f} s, p95 {f['resume_p95']:.1f} s  "
        f"({resume_ok} the {TARGET_RESUMED_PER_S:g}/s target)"
    )


if __name__ == "__main__":
    main()
