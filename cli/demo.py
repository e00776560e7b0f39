"""``support-agent demo``: two sample tickets through the real stack, then a clean stop.

Both tickets carry attachments the agent investigates with real code in the
sandbox. The customer answers the first ticket once the agent has replied
(resolved); the second hears nothing and times out after a few seconds
(escalated). The demo runs in its own Hatchet namespace so it never picks up
another session's workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid

from agent.attachments import Attachment
from agent.tickets import CustomerReply, Ticket
from evidence.ingest import Upload
from workflows.client import ingest_evidence, push_reply, submit_ticket, wait_for_reply_sent
from workflows.dashboard import find_dashboard
from workflows.deps import open_evidence_store
from workflows.engine import connect, running_engine, start_engine_background, stop_engine
from workflows.models import TicketOutcome
from workflows.settings import Settings
from workflows.support import build_support_workflow

DEMO_REPLY_TIMEOUT_SECONDS = 8.0

_API_LOG = "\n".join(
    [f"2026-11-20T09:{m:02d}:00Z INFO GET /api/orders 200 12ms" for m in range(0, 40, 3)]
    + [
        f"2026-11-20T09:{m:02d}:{s:02d}Z ERROR export worker: connection pool exhausted "
        f"(size=10, waiting={w}) request_id=a{m}{s}"
        for m, s, w in ((41, 5, 31), (41, 9, 38), (42, 1, 44), (43, 30, 52))
    ]
    + ["2026-11-20T09:44:00Z ERROR GET /api/exports/csv 500 30012ms timeout"] * 3
    + ["2026-11-20T09:45:00Z WARN retrying export job 9912"]
)
_ORDERS_CSV = (
    "order_id,customer,total,currency\n1001,acme,120.50,EUR\n1002,acme,,EUR\n"
    "1003,globex,99.00\n1004,initech,42.00,EUR\n1004,initech,42.00,EUR\n"
)
_SSO_CONFIG = (
    "sso:\n  provider: okta\n  issuer: https://login.example.com\n"
    "  client_secret: s3cr3t-value\n  callback_url: http://localhost:8080/sso/callback\n"
    "debug: true\nport: 99999\n"
)


def _samples(settings: Settings) -> tuple[tuple[Ticket, str | None], ...]:
    # Fresh ticket ids per demo, so a reply from an earlier demo (still inside
    # the lookback window) cannot resolve this one.
    run = uuid.uuid4().hex[:6].upper()
    store = open_evidence_store(settings)

    def stored(ticket_id: str, files: dict[str, str]) -> list[Attachment]:
        uploads = [Upload.from_bytes(name, text.encode()) for name, text in files.items()]
        return ingest_evidence(settings, store, ticket_id, uploads).attachments

    return (
        (
            Ticket(
                ticket_id=f"DEMO-{run}-1",
                customer_email="dana@example.com",
                subject="CSV export fails with error 500",
                body="Since this morning every CSV export of our orders fails with a 500 "
                "error. Server log and a sample export attached.",
                attachments=stored(
                    f"DEMO-{run}-1",
                    {"api-server.log": _API_LOG, "orders-sample.csv": _ORDERS_CSV},
                ),
            ),
            "Thanks, we raised the pool size and the exports work now.",
        ),
        (
            Ticket(
                ticket_id=f"DEMO-{run}-2",
                customer_email="lee@example.com",
                subject="Cannot log in with SSO",
                body="Our whole team is locked out since we changed the SSO settings. "
                "Config attached.",
                attachments=stored(f"DEMO-{run}-2", {"sso.yaml": _SSO_CONFIG}),
            ),
            None,
        ),
    )


def _print_outcome(run_id: str, outcome: TicketOutcome) -> None:
    print(f"\n== {outcome.ticket_id}: {outcome.status.upper()}  (run {run_id})")
    print(
        f"   triage: {outcome.triage_category}, {outcome.triage_priority}; "
        f"planner: {outcome.planner}; rounds: {outcome.rounds}; "
        f"scripts run: {outcome.scripts_run} ({outcome.spent.sandbox_seconds:.1f} s in sandboxes)"
    )
    for line in outcome.initial_reply.splitlines():
        if line.startswith("- "):
            print(f"   finding {line}")
    for reply in outcome.customer_replies:
        print(f"   customer replied: {reply}")
    if outcome.escalation_reason:
        print(f"   escalated to a human: {outcome.escalation_reason}")


async def _run_tickets(settings: Settings, namespace: str) -> int:
    hatchet = connect(settings, namespace=namespace)
    workflow = build_support_workflow(hatchet, settings)
    samples = _samples(settings)
    refs = []
    for ticket, _ in samples:
        ref = await submit_ticket(
            hatchet, workflow, ticket, settings, reply_timeout_seconds=DEMO_REPLY_TIMEOUT_SECONDS
        )
        print(
            f"submitted {ticket.ticket_id} with {len(ticket.attachments)} attachment(s): "
            f"run {ref.workflow_run_id}"
        )
        refs.append(ref)

    async def answer(ticket: Ticket, message: str) -> None:
        await wait_for_reply_sent(hatchet, ticket.ticket_id, within=120)
        print(f"agent replied to {ticket.ticket_id}; the customer answers")
        await push_reply(hatchet, CustomerReply(ticket_id=ticket.ticket_id, message=message))

    print(
        f"investigating (a ticket with no reply escalates {DEMO_REPLY_TIMEOUT_SECONDS:g} s "
        "after the agent's reply) ..."
    )
    await asyncio.gather(*(answer(t, m) for t, m in samples if m is not None))
    outcomes = await asyncio.gather(*(r.aio_result() for r in refs))
    for ref, outcome in zip(refs, outcomes, strict=True):
        _print_outcome(ref.workflow_run_id, outcome)
    board = find_dashboard(settings, hatchet.tenant_id, hatchet.config.server_url)
    if board is not None:
        print(f"\nreview the scripts in the dashboard: {board.ticket_url(samples[0][0].ticket_id)}")
        print("  (log in with: support-agent dashboard)")
    else:
        print(f"\nHatchet API: {hatchet.config.server_url} (tenant {hatchet.tenant_id})")
    expected = ["resolved", "escalated"]
    return 0 if [o.status for o in outcomes] == expected else 1


def _demo_planner(settings: Settings) -> tuple[str, str]:
    """The demo's planner, chosen out loud: Claude with a key, else the offline planner."""
    if settings.anthropic_api_key is not None and settings.llm == "claude":
        return "claude", "Claude"
    reason = "no ANTHROPIC_API_KEY" if settings.anthropic_api_key is None else "SUPPORT_AGENT_LLM"
    return "offline", (
        f"offline-planner (chosen for the demo: {reason}; a rule-based stand-in that writes "
        "diagnostic code from the attachments and says its replies are automated; not Claude)"
    )


def run_demo(settings: Settings) -> int:
    started = time.monotonic()
    own_engine = not settings.external_engine and running_engine(settings) is None
    if own_engine:
        info = start_engine_background(settings)
        print(f"engine started: API {info.api_url}")
    planner, description = _demo_planner(settings)
    print(f"planner: {description}")
    # The demo's client and worker use a fresh namespace, so no other worker takes its runs.
    namespace = f"demo_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "HATCHET_CLIENT_NAMESPACE": namespace, "SUPPORT_AGENT_LLM": planner}
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (settings.state_dir / "demo-worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker"], stdout=log, stderr=log, env=env
        )
    code = 1
    try:
        code = asyncio.run(_run_tickets(settings, namespace))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        if own_engine and code != 0:
            stop_engine(settings)
            print("engine stopped")
        elif own_engine:
            # Left running so the dashboard link above works; nothing else holds it.
            print(
                "the engine keeps running for the dashboard: stop it with "
                "`support-agent engine stop`"
            )
    print(f"demo finished in {time.monotonic() - started:.1f} s")
    return code
