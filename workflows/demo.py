"""``support-agent demo``: two sample tickets through the real stack, then a clean stop.

One ticket gets a customer reply right after it starts (resolved), the other
hears nothing and times out after a few seconds (escalated). The demo runs in
its own Hatchet namespace so it never picks up another session's workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

from agent.tickets import CustomerReply, Ticket, TicketOutcome
from workflows.client import push_reply, submit_ticket
from workflows.engine import (
    connect,
    external_engine_configured,
    running_engine,
    start_engine_background,
    stop_engine,
)
from workflows.settings import Settings
from workflows.support import build_support_workflow

DEMO_REPLY_TIMEOUT_SECONDS = 8.0


def _samples() -> tuple[tuple[Ticket, str | None], ...]:
    # Fresh ticket ids per demo, so a reply from an earlier demo (still inside
    # the lookback window) cannot resolve this one.
    run = uuid.uuid4().hex[:6].upper()
    return (
        (
            Ticket(
                ticket_id=f"DEMO-{run}-1",
                customer_email="dana@example.com",
                subject="CSV export fails with error 500",
                body="Since this morning every CSV export of our orders fails with a 500 error. "
                "It worked yesterday. Can you check?",
            ),
            "Retried just now and the export works again, thanks!",
        ),
        (
            Ticket(
                ticket_id=f"DEMO-{run}-2",
                customer_email="lee@example.com",
                subject="Cannot log in with SSO",
                body="Our whole team is locked out since we rotated the SSO certificate.",
            ),
            None,
        ),
    )


def _print_outcome(run_id: str, outcome: TicketOutcome) -> None:
    print(f"\n== {outcome.ticket_id}: {outcome.status.upper()}  (run {run_id})")
    print(f"   triage: {outcome.triage_category}, {outcome.triage_priority}")
    print("   first reply: " + outcome.initial_reply.splitlines()[2])
    if outcome.customer_reply:
        print(f"   customer replied: {outcome.customer_reply}")
    if outcome.escalation_reason:
        print(f"   escalated to a human: {outcome.escalation_reason}")


async def _run_tickets(settings: Settings) -> int:
    hatchet = connect(settings)
    workflow = build_support_workflow(hatchet, settings)
    refs = []
    for ticket, reply in _samples():
        ref = await submit_ticket(
            hatchet, workflow, ticket, reply_timeout_seconds=DEMO_REPLY_TIMEOUT_SECONDS
        )
        print(f"submitted {ticket.ticket_id}: run {ref.workflow_run_id}")
        if reply is not None:
            await push_reply(hatchet, CustomerReply(ticket_id=ticket.ticket_id, message=reply))
            print(f"customer replied to {ticket.ticket_id}")
        refs.append(ref)
    print(f"waiting (tickets with no reply escalate after {DEMO_REPLY_TIMEOUT_SECONDS:g} s) ...")
    outcomes = await asyncio.gather(*(ref.aio_result() for ref in refs))
    for ref, outcome in zip(refs, outcomes, strict=True):
        _print_outcome(ref.workflow_run_id, outcome)
    print(f"\nHatchet API: {hatchet.config.server_url} (tenant {hatchet.tenant_id})")
    expected = ["resolved", "escalated"]
    return 0 if [o.status for o in outcomes] == expected else 1


def run_demo(settings: Settings) -> int:
    started = time.monotonic()
    own_engine = not external_engine_configured() and running_engine(settings) is None
    if own_engine:
        info = start_engine_background(settings)
        print(f"engine started: API {info.api_url}")
    # Both the demo's client and its worker use a fresh namespace.
    os.environ["HATCHET_CLIENT_NAMESPACE"] = f"demo_{uuid.uuid4().hex[:8]}"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "demo-worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workflows.cli", "worker"], stdout=log, stderr=log
        )
    try:
        code = asyncio.run(_run_tickets(settings))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if own_engine:
            stop_engine(settings)
            print("engine stopped")
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return code
