"""Real-size evidence end to end: a 100 MB log and a zip bundle, submitted with the CLI.

The files are made on the fly in a temporary directory (written in chunks,
never held whole), go through ``submit --attach`` into the evidence store,
and the session's worker streams them from the store into real sandboxes,
where the offline planner's scripts read them. The ticket run's own payload
carries only references.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hatchet_sdk import Hatchet

from agent.tickets import Ticket
from evidence.ingest import Upload
from tests.conftest import new_ticket_id
from tests.e2e.conftest import WorkerProcess
from tests.e2e.test_cli import cli
from workflows.client import ingest_evidence, submit_ticket
from workflows.deps import open_evidence_store
from workflows.models import TicketStatus
from workflows.settings import Settings
from workflows.support import SupportWorkflow
from workflows.transcript import fetch_transcript

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

LOG_BYTES = 100 * 1024 * 1024
ERROR_EVERY = 5000
SSO = b"client_id: web\nclient_secret: s3cr3t-value\ncallback_url: http://localhost:3000/cb\n"


def write_log(path: Path, size: int) -> int:
    """A day of application log, about ``size`` bytes; returns its number of error lines."""
    errors = 0
    line_no = 0
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size:
            block = []
            for _ in range(1000):
                line_no += 1
                stamp = f"2026-11-20T{(line_no // 3600) % 24:02d}:{(line_no // 60) % 60:02d}:" + (
                    f"{line_no % 60:02d}Z"
                )
                if line_no % ERROR_EVERY == 0:
                    errors += 1
                    block.append(
                        f"{stamp} ERROR export worker: connection pool exhausted (size=20, "
                        f"waiting={line_no % 97}) request_id=r{line_no}\n"
                    )
                else:
                    block.append(
                        f"{stamp} INFO GET /api/orders?page={line_no % 500} 200 {line_no % 90}ms "
                        f"user=u{line_no % 1000} trace={line_no:016x} region=eu-west-1\n"
                    )
            text = "".join(block)
            out.write(text)
            written += len(text)
    return errors


def bundle(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config/sso.yaml", SSO)
        archive.writestr("logs/worker.log", b"2026-11-20T09:00:00Z ERROR worker crashed\n" * 3)
        archive.writestr("../escape.txt", b"should never be unpacked\n")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def big_ticket(
    namespace: str, worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("evidence")
    log = folder / "app.log"
    errors = write_log(log, LOG_BYTES)
    zipped = folder / "support-bundle.zip"
    bundle(zipped)
    result = await cli(
        namespace,
        "submit",
        "dana@example.com",
        "Exports fail under load",
        "--body",
        "A day of logs and our support bundle attached.",
        "--attach",
        str(log),
        "--attach",
        str(zipped),
        "--reply-timeout",
        "2",
        "--wait",
        "--json",
        within=400,
    )
    log.unlink()
    assert result.status == 0, result.stderr
    assert "support-bundle.zip: 1 member(s) skipped" in result.stderr
    document: dict[str, Any] = result.json()
    document["errors"] = errors
    return document


async def test_a_100_mb_log_and_a_zip_bundle_are_investigated_end_to_end(
    big_ticket: dict[str, Any], hatchet: Hatchet
) -> None:
    outcome = big_ticket["outcome"]
    assert big_ticket["status"] == "escalated"  # nobody replies within 2 s
    reply = outcome["initial_reply"]
    assert f"app.log has {big_ticket['errors']} error lines" in reply
    assert "connection pool exhausted" in reply
    assert "sso.yaml: line 2: 'client_secret' holds a plaintext secret" in reply
    assert "worker.log has 3 error lines" in reply
    transcript = await fetch_transcript(hatchet, big_ticket["run_id"])
    scripts = transcript.scripts
    assert scripts and all(s.exit_code == 0 for s in scripts), [s.stderr for s in scripts]
    assert any("/work/input/support-bundle.zip.d/config/sso.yaml" in s.code for s in scripts)


async def test_the_ticket_run_carries_references_not_content(
    big_ticket: dict[str, Any], hatchet: Hatchet
) -> None:
    details = await hatchet.runs.aio_get(big_ticket["run_id"])
    payload = json.dumps(details.run.input)
    assert len(payload) < 64 * 1024, len(payload)
    ticket = Ticket.model_validate(details.run.input.get("input", details.run.input)["ticket"])
    log, zipped = ticket.attachments
    assert (log.name, log.size, log.lines) == ("app.log", log.size, log.lines)
    assert log.size >= LOG_BYTES and log.lines and log.lines > 400_000
    assert zipped.archive is not None
    assert [f.path for f in zipped.archive.files] == ["config/sso.yaml", "logs/worker.log"]
    assert "path leaves the archive" in zipped.archive.skipped[0]
    store = open_evidence_store(Settings())
    assert store.size(log.sha256) == log.size


async def test_a_ticket_whose_evidence_is_gone_fails_its_code_runs_with_the_reason(
    hatchet: Hatchet, support: SupportWorkflow, settings: Settings
) -> None:
    store = open_evidence_store(settings)
    ticket_id = new_ticket_id()
    data = b"2026-11-20T09:00:00Z ERROR gone soon " + new_ticket_id().encode() + b"\n"
    stored = ingest_evidence(settings, store, ticket_id, [Upload("gone.log", io.BytesIO(data))])
    ticket = Ticket(
        ticket_id=ticket_id,
        customer_email="lee@example.com",
        subject="Crash",
        body="It crashes.",
        attachments=stored.attachments,
    )
    store.delete(stored.attachments[0].sha256)  # as the sweep would after the retention
    ref = await submit_ticket(hatchet, support, ticket, settings, reply_timeout_seconds=2)
    outcome = await asyncio.wait_for(ref.aio_result(), timeout=180)
    assert outcome.status == TicketStatus.ESCALATED
    transcript = await fetch_transcript(hatchet, ref.workflow_run_id)
    (script,) = transcript.scripts
    assert script.error is not None and f"evidence of ticket {ticket_id} is gone" in script.error
    assert "gone.log" in script.error
