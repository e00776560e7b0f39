"""The ``support-agent`` command line as a user runs it: subprocesses against the real engine.

The session's worker (offline planner, real Docker sandboxes) serves the
session's namespace; every command here runs in that namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hatchet_sdk import Hatchet, V1TaskStatus

from agent.tickets import Ticket
from tests.conftest import new_ticket_id
from tests.e2e.conftest import WorkerProcess, stored
from workflows.client import submit_ticket, wait_for_reply_sent
from workflows.models import TicketOutcome
from workflows.settings import Settings
from workflows.support import SupportWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

LOG = "\n".join(
    [f"2026-11-20T09:{m:02d}:00Z INFO GET /api/orders 200 12ms" for m in range(8)]
    + [f"2026-11-20T09:{m:02d}:05Z ERROR export: connection pool exhausted" for m in range(8, 12)]
)
_SCRIPT = Path(sys.executable).with_name("support-agent")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cli.main"]


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def cli(namespace: str, *args: str, within: float = 90) -> Result:
    """Run ``support-agent ARGS`` in the session's namespace, without colour."""
    env = {**os.environ, "HATCHET_CLIENT_NAMESPACE": namespace, "NO_COLOR": "1"}
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


@pytest.fixture(scope="module")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "export-worker.log"
    path.write_text(LOG)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def finished(namespace: str, worker: WorkerProcess, log_file: Path) -> dict[str, Any]:
    """``submit --wait --json`` of a ticket that escalates when nobody replies."""
    result = await cli(
        namespace,
        "submit",
        "dana@example.com",
        "CSV export fails with error 500",
        "--body",
        "Every CSV export fails since this morning. Log attached.",
        "--attach",
        str(log_file),
        "--reply-timeout",
        "2",
        "--wait",
        "--json",
    )
    assert result.status == 0, result.stderr
    document: dict[str, Any] = result.json()
    return document


async def test_submit_wait_json_prints_the_outcome(finished: dict[str, Any]) -> None:
    assert finished["ticket_id"].startswith("T-") and len(finished["ticket_id"]) == 14
    assert finished["status"] == "escalated"
    outcome = finished["outcome"]
    assert outcome["escalation_reason"] == "no reply from the customer within 2 s"
    assert outcome["scripts_run"] == 1
    assert outcome["escalation"]["attachments"][0]["name"] == "export-worker.log"


async def test_show_json_has_every_script_and_its_output(
    namespace: str, finished: dict[str, Any]
) -> None:
    result = await cli(namespace, "show", finished["run_id"], "--json")
    assert result.status == 0, result.stderr
    transcript = result.json()
    assert (transcript["version"], transcript["run_id"]) == (1, finished["run_id"])
    assert transcript["status"] == "escalated"
    assert transcript["ticket"]["attachments"][0]["name"] == "export-worker.log"
    assert transcript["triage"]["category"] == "data"
    scripts = [e for e in transcript["entries"] if e["kind"] == "script"]
    assert len(scripts) == 1
    script = scripts[0]
    assert (
        "export-worker.log" in script["purpose"]
        and "/work/input/export-worker.log" in (script["code"])
    )
    assert script["exit_code"] == 0 and "FINDING:" in script["stdout"]
    kinds = [e["kind"] for e in transcript["entries"]]
    assert kinds == ["turn", "script", "turn", "reply", "escalation"]
    assert transcript["escalation"]["reason"] == "no reply from the customer within 2 s"

    # The text view of the same run, looked up by ticket id.
    text = await cli(namespace, "show", finished["ticket_id"])
    assert text.status == 0, text.stderr
    assert script["purpose"] in text.stdout and "FINDING:" in text.stdout
    assert "\x1b[" not in text.stdout  # no colour off a terminal
    assert "ESCALATED" in text.stdout


async def test_a_ticket_whose_id_is_a_uuid_is_found_by_it(
    namespace: str, worker: WorkerProcess
) -> None:
    """Helpdesks often use UUIDs as ticket ids: one is a ticket's id when a ticket has it."""
    ticket_id = str(uuid.uuid4())
    submitted = await cli(
        namespace, "submit", "dana@example.com", "Login loop", "--body", "Signed out again.",
        "--ticket-id", ticket_id, "--reply-timeout", "2", "--wait", "--json",
    )  # fmt: skip
    assert submitted.status == 0, submitted.stderr
    run_id = submitted.json()["run_id"]
    assert run_id != ticket_id
    shown = await cli(namespace, "show", ticket_id, "--json")
    assert shown.status == 0, shown.stderr
    assert (shown.json()["run_id"], shown.json()["ticket"]["ticket_id"]) == (run_id, ticket_id)
    by_run = await cli(namespace, "show", run_id, "--json")  # a run id still works
    assert by_run.status == 0 and by_run.json()["run_id"] == run_id, by_run.stderr


async def test_tickets_json_lists_the_run_with_its_status(
    namespace: str, finished: dict[str, Any]
) -> None:
    result = await cli(namespace, "tickets", "--json", "--limit", "50")
    assert result.status == 0, result.stderr
    rows = {row["run_id"]: row for row in result.json()}
    row = rows[finished["run_id"]]
    assert (row["ticket_id"], row["status"]) == (finished["ticket_id"], "escalated")
    assert row["scripts_run"] == 1 and row["sandbox_seconds"] > 0


async def finished_outcome(hatchet: Hatchet, run_id: str, within: float = 60) -> TicketOutcome:
    deadline = asyncio.get_running_loop().time() + within
    while (status := await hatchet.runs.aio_get_status(run_id)) != V1TaskStatus.COMPLETED:
        assert status in (V1TaskStatus.QUEUED, V1TaskStatus.RUNNING), status
        assert asyncio.get_running_loop().time() < deadline, f"{run_id} still {status}"
        await asyncio.sleep(0.5)
    return TicketOutcome.model_validate(await hatchet.runs.aio_get_result(run_id))


async def test_reply_resolves_a_waiting_ticket(namespace: str, hatchet: Hatchet) -> None:
    ticket_id = new_ticket_id("R")
    submitted = await cli(
        namespace,
        "submit",
        "lee@example.com",
        "Export broken",
        "--body",
        "The export fails.",
        "--ticket-id",
        ticket_id,
        "--reply-timeout",
        "300",
        "--json",
    )
    assert submitted.status == 0, submitted.stderr
    run_id = submitted.json()["run_id"]
    await wait_for_reply_sent(hatchet, ticket_id, within=60)

    listed = await cli(namespace, "tickets", "--json")
    assert {r["run_id"]: r["status"] for r in listed.json()}[run_id] == "waiting"

    replied = await cli(namespace, "reply", ticket_id, "Thanks, it works now.", "--resolved")
    assert replied.status == 0, replied.stderr
    assert f"reply sent to ticket {ticket_id}" in replied.stdout
    outcome = await finished_outcome(hatchet, run_id)
    assert (outcome.status, outcome.customer_reply) == ("resolved", "Thanks, it works now.")


async def test_watch_prints_scripts_and_finishes(
    namespace: str, hatchet: Hatchet, support: SupportWorkflow
) -> None:
    ticket = Ticket(
        ticket_id=new_ticket_id("W"),
        customer_email="ops@example.com",
        subject="Export broken",
        body="The CSV export fails; log attached.",
        attachments=[stored("export.log", LOG.encode())],
    )
    ref = await submit_ticket(hatchet, support, ticket, Settings(), reply_timeout_seconds=3)
    result = await cli(namespace, "watch", ref.workflow_run_id, within=60)
    assert (result.status, result.stderr) == (0, "")
    out = result.stdout
    assert "script 1 · python · Count and group the error lines in export.log" in out
    assert "/work/input/export.log" in out  # the code itself
    assert "FINDING:" in out  # its output
    assert f"reply sent to {ticket.customer_email}" in out
    assert "escalated to a human" in out
    assert out.rstrip().splitlines()[-3].startswith(f"ESCALATED  {ticket.ticket_id}")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing attachment", "attachment not found: "),
        ("empty body", "the body is empty"),
    ],
)
async def test_bad_input_fails_in_one_line_and_enqueues_nothing(
    namespace: str, hatchet: Hatchet, worker: WorkerProcess, case: str, message: str
) -> None:
    ticket_id = new_ticket_id("B")
    args = ["submit", "a@example.com", "Subject", "--ticket-id", ticket_id]
    if case == "missing attachment":
        args += ["--body", "Body", "--attach", "/nonexistent/app.log"]
    else:
        args += ["--body", "   "]
    result = await cli(namespace, *args)
    assert result.status == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    await asyncio.sleep(1.0)  # the REST view lags a trigger by a moment
    rows = (
        await hatchet.runs.aio_list(additional_metadata={"ticket_id": ticket_id}, only_tasks=True)
    ).rows
    assert rows == []
