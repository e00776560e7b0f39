"""Every script the agent ran is reviewable where the dashboard shows task runs.

The dashboard reads a run with ``GET /api/v1/stable/workflow-runs/{run_id}``
and a task's Input and Output tabs with ``GET /api/v1/stable/tasks/{id}``;
this test reads the same endpoints with the same Bearer token and checks that
each ``run-code`` task shows its code, its purpose and what it printed, under
a display name that says what it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from hatchet_sdk import Hatchet

from agent.packet import ScriptRecord
from agent.tickets import Ticket
from tests.conftest import new_ticket_id
from tests.e2e.conftest import stored
from workflows.client import submit_ticket
from workflows.settings import Settings
from workflows.support import SupportWorkflow
from workflows.transcript import fetch_transcript

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

REST_TIMEOUT = 30.0
LOG = "\n".join(
    [f"2026-11-20T10:{m:02d}:00Z INFO GET /api/orders 200 9ms" for m in range(10)]
    + [f"2026-11-20T10:{m:02d}:30Z ERROR db: deadlock detected on orders" for m in range(10, 14)]
).encode()


async def rest_get(hatchet: Hatchet, path: str) -> dict[str, Any]:
    """One dashboard call: the REST API with the client's Bearer token."""

    def call() -> dict[str, Any]:
        response = requests.get(
            f"{hatchet.config.server_url}{path}",
            headers={"Authorization": f"Bearer {hatchet.config.token}"},
            timeout=10,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    return await asyncio.to_thread(call)


def task_input(raw: dict[str, Any]) -> dict[str, Any]:
    """A standalone task's input, as the dashboard unwraps it from ``input.input``."""
    inner = raw.get("input")
    return inner if isinstance(inner, dict) and "code" not in raw else raw


async def code_task_ids(hatchet: Hatchet, run_id: str, count: int) -> list[str]:
    """The ticket's ``run-code`` task runs, once the REST view has all of them finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REST_TIMEOUT
    done: list[str] = []
    while len(done) < count and loop.time() < deadline:
        await asyncio.sleep(0.2)
        scripts = (await fetch_transcript(hatchet, run_id)).scripts
        done = [s.id for s in scripts if s.status == "COMPLETED"]
    return done


async def test_each_script_is_reviewable_in_the_dashboard(
    hatchet: Hatchet, support: SupportWorkflow
) -> None:
    ticket = Ticket(
        ticket_id=new_ticket_id("D"),
        customer_email="review@example.com",
        subject="Orders API errors",
        body="Since 10:10 the orders API fails; log attached.",
        attachments=[stored("orders-api.log", LOG)],
    )
    ref = await submit_ticket(hatchet, support, ticket, Settings(), reply_timeout_seconds=2)
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=90)
    assert outcome.escalation is not None and outcome.scripts_run >= 1
    scripts: dict[int, ScriptRecord] = {s.step: s for s in outcome.escalation.scripts}

    # The ticket's own run page.
    run_page = await rest_get(hatchet, f"/api/v1/stable/workflow-runs/{ref.workflow_run_id}")
    assert "support-ticket" in run_page["run"]["displayName"]

    ids = await code_task_ids(hatchet, ref.workflow_run_id, len(scripts))
    assert len(ids) == len(scripts)
    names = []
    for task_id in ids:
        # The task sheet: its Input and Output tabs.
        task = await rest_get(hatchet, f"/api/v1/stable/tasks/{task_id}")
        request, result = task_input(task["input"]), task["output"]
        script = scripts[request["step"]]
        # One string per line: the dashboard's JSON view shows the script as code.
        assert request["code"] == script.code.split("\n") and script.code.strip()
        assert request["purpose"] == script.purpose == result["purpose"]
        assert request["language"] == script.language
        assert "\n".join(result["stdout"]) == script.stdout and "FINDING:" in script.stdout
        assert result["exit_code"] == 0
        assert "run-code" in task["displayName"]
        names.append(task["displayName"])

        # The child's own run page shows the same record.
        page = await rest_get(hatchet, f"/api/v1/stable/workflow-runs/{task_id}")
        assert "run-code" in page["run"]["displayName"]
        assert "\n".join(task_input(page["run"]["input"])["code"]) == script.code
        assert "\n".join(page["run"]["output"]["stdout"]) == script.stdout
        # The run list tells a ticket's scripts apart by their metadata.
        metadata = page["run"]["additionalMetadata"]
        assert metadata["ticket_id"] == ticket.ticket_id
        assert metadata["step"] == str(script.step)
        assert metadata["purpose"] == script.purpose
    print("run-code display names:", names)
