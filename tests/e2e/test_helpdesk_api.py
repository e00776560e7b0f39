"""A helpdesk connected over HTTP: the real API server, worker, engine and a webhook receiver.

The API runs as ``support-agent serve`` (a real uvicorn server); requests are
signed with the reference Standard Webhooks library; the agent's events go to
a real HTTP receiver that verifies their signatures and dedupes on the id.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hatchet_sdk import Hatchet

from tests.conftest import eventually, new_ticket_id
from tests.e2e.api_server import API_SECRET, ApiServer
from tests.e2e.conftest import WorkerProcess
from tests.webhooks import Receiver, multipart, new_secret, signed_headers
from workflows.engine import EngineInfo, connect
from workflows.names import REPLY_EVENT
from workflows.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
DELIVERY_SECRET = new_secret()
LOG = b"2026-11-20T10:00:01Z ERROR db: connection pool exhausted\n" * 3


class HelpdeskApi(ApiServer):
    """The API server, plus multipart ticket posts as a helpdesk sends them."""

    def post_ticket(
        self,
        fields: dict[str, str],
        files: list[tuple[str, bytes]] | None = None,
        *,
        msg_id: str | None = None,
        encoded: tuple[bytes, str] | None = None,
    ) -> requests.Response:
        """``POST /v1/tickets`` as multipart/form-data: text fields and attachment parts.

        ``encoded``: a body made earlier, for a retried delivery (byte for byte the same).
        """
        body, content_type = encoded or multipart(
            fields, [("api.log", LOG)] if files is None else files
        )
        headers = {**signed_headers(API_SECRET, body, msg_id=msg_id), "content-type": content_type}
        return requests.post(self.url + "/v1/tickets", data=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def api_namespace() -> str:
    return f"h{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    # The first delivery is answered 503: Hatchet must retry it, with the same id.
    with Receiver(DELIVERY_SECRET, fail_first=1) as r:
        yield r


@pytest.fixture(scope="module")
def helpdesk_worker(
    engine: EngineInfo | None,
    api_namespace: str,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        api_namespace,
        tmp_path_factory.mktemp("helpdesk-worker") / "worker.log",
        {
            "SUPPORT_AGENT_DELIVERY_URL": receiver.url,
            "SUPPORT_AGENT_DELIVERY_SECRET": DELIVERY_SECRET,
        },
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(
    engine: EngineInfo | None,
    helpdesk_worker: WorkerProcess,
    api_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HelpdeskApi]:
    server = HelpdeskApi(api_namespace, tmp_path_factory.mktemp("api") / "api.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_hatchet(settings: Settings, api_namespace: str) -> Hatchet:
    return connect(settings, namespace=api_namespace)


def ticket_payload(ticket_id: str, **extra: str) -> dict[str, str]:
    return {
        "ticket_id": ticket_id,
        "customer_email": "dana@example.com",
        "subject": "Exports fail with error 500",
        "body": "Every CSV export fails since this morning. Log attached.",
        **extra,
    }


async def event_of(receiver: Receiver, ticket_id: str, kind: str, within: float = 120) -> Any:
    async def seen() -> Any:
        return next((e for e in receiver.of_ticket(ticket_id) if e["type"] == kind), None)

    return await eventually(seen, within=within, what=f"{kind} for {ticket_id}")


async def status_of(api: HelpdeskApi, ticket_id: str, wanted: str, within: float = 120) -> Any:
    async def check() -> Any:
        body = (await asyncio.to_thread(api.request, "GET", f"/v1/tickets/{ticket_id}")).json()
        return body if body.get("status") == wanted else None

    return await eventually(check, within=within, what=f"{ticket_id} {wanted}")


async def test_a_signed_ticket_ends_with_signed_events_at_the_helpdesk(
    api: HelpdeskApi, receiver: Receiver, api_hatchet: Hatchet
) -> None:
    ticket_id = new_ticket_id("H")
    msg_id = f"msg_{uuid.uuid4().hex}"
    encoded = multipart(ticket_payload(ticket_id), [("api.log", LOG)])
    first = api.post_ticket({}, msg_id=msg_id, encoded=encoded)
    assert first.status_code == 202, first.text
    assert first.json()["ticket_id"] == ticket_id
    # The helpdesk retries the same delivery: the same answer, no second ticket.
    again = api.post_ticket({}, msg_id=msg_id, encoded=encoded)
    assert (again.status_code, again.json()) == (202, first.json())
    # A new delivery of the same ticket while its run is live does not cancel it.
    duplicate = api.post_ticket(ticket_payload(ticket_id))
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "ticket_id"

    replied = await event_of(receiver, ticket_id, "ticket.replied")
    assert (
        replied["data"]["round"] == 1 and "api.log has 3 error lines" in replied["data"]["message"]
    )
    waiting = await status_of(api, ticket_id, "waiting for customer")
    assert waiting["run_id"] == first.json()["run_id"]
    assert [m["direction"] for m in waiting["messages"]] == ["agent"]
    assert waiting["scripts"] and waiting["scripts"][0]["exit_code"] == 0

    # Malformed, unsigned and replayed replies change nothing.
    assert (
        api.request("POST", f"/v1/tickets/{ticket_id}/replies", {"message": " "}).status_code == 422
    )
    unsigned = await asyncio.to_thread(
        requests.post, f"{api.url}/v1/tickets/{ticket_id}/replies", json={"message": "hi"}
    )
    assert unsigned.status_code == 401
    reply = {"message": "Thanks, that was it: it works now."}
    reply_id = f"msg_{uuid.uuid4().hex}"
    taken = api.request("POST", f"/v1/tickets/{ticket_id}/replies", reply, msg_id=reply_id)
    assert taken.status_code == 202, taken.text
    replayed = api.request("POST", f"/v1/tickets/{ticket_id}/replies", reply, msg_id=reply_id)
    assert replayed.json() == taken.json()

    resolved = await event_of(receiver, ticket_id, "ticket.resolved")
    assert resolved["data"]["customer_reply"] == reply["message"]
    final = await status_of(api, ticket_id, "resolved")
    directions = [(m["direction"], m["accepted"]) for m in final["messages"]]
    assert directions == [("agent", True), ("customer", True), ("agent", True)]
    # One reply event reached the ticket: the replay pushed nothing.
    rows = (
        await api_hatchet.runs.aio_list(
            additional_metadata={"ticket_id": ticket_id}, only_tasks=True
        )
    ).rows
    assert sum(1 for r in rows if (r.workflow_name or "").endswith("receive-reply")) == 1
    assert sum(1 for r in rows if (r.workflow_name or "").endswith("support-ticket")) == 1
    # Every event arrived once however often it was attempted; retries kept the id.
    events = receiver.of_ticket(ticket_id)
    assert sorted(e["type"] for e in events) == [
        "ticket.replied",
        "ticket.replied",
        "ticket.resolved",
    ]
    assert not receiver.rejected
    assert len(receiver.attempts) > len(receiver.events)  # the 503 was retried


async def test_a_multipart_bundle_is_unpacked_and_a_bomb_refused_without_losing_the_ticket(
    api: HelpdeskApi, receiver: Receiver
) -> None:
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("logs/api.log", LOG)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (20 * 1024 * 1024))
    ticket_id = new_ticket_id("Z")
    files = [("bundle.zip", bundle.getvalue()), ("bomb.zip", bomb.getvalue())]
    response = api.post_ticket(ticket_payload(ticket_id, reply_timeout_seconds="3"), files)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert [(a["name"], a["unpacked_files"]) for a in accepted["attachments"]] == [
        ("bundle.zip", 1),
        ("bomb.zip", None),
    ]
    (warning,) = accepted["warnings"]
    assert warning.startswith("bomb.zip: not unpacked:") and "compression ratio" in warning
    replied = await event_of(receiver, ticket_id, "ticket.replied")
    assert "api.log has 3 error lines" in replied["data"]["message"]


async def test_silence_ends_with_a_signed_escalation_carrying_the_packet(
    api: HelpdeskApi, receiver: Receiver
) -> None:
    ticket_id = new_ticket_id("E")
    response = api.post_ticket(ticket_payload(ticket_id, reply_timeout_seconds="3"))
    assert response.status_code == 202, response.text
    escalated = await event_of(receiver, ticket_id, "ticket.escalated")
    assert escalated["data"]["reason"] == "no reply from the customer within 3 s"
    packet = escalated["data"]["packet"]
    assert packet["ticket_id"] == ticket_id and packet["scripts"][0]["exit_code"] == 0
    final = await status_of(api, ticket_id, "escalated")
    assert final["escalation_reason"] == escalated["data"]["reason"]
    listed = api.request("GET", "/v1/tickets?limit=50").json()
    assert ticket_id in [row["ticket_id"] for row in listed["tickets"]]


async def test_replies_to_unknown_or_closed_tickets_are_refused(api: HelpdeskApi) -> None:
    unknown = api.request("POST", f"/v1/tickets/{new_ticket_id('U')}/replies", {"message": "hi"})
    assert unknown.status_code == 404
    assert api.request("GET", f"/v1/tickets/{new_ticket_id('U')}").status_code == 404
    assert api.request("GET", "/readyz").json()["status"] == "ready"


# -- Hatchet's support-agent cookbook tests, adapted only in how the ticket is submitted --------


async def ticket_result(hatchet: Hatchet, run_id: str) -> Any:
    """The run's result as the cookbook's ``ref.aio_result()`` gives it (the task's output)."""
    result = await asyncio.wait_for(hatchet.runs.get_run_ref(run_id).aio_result(), timeout=120)
    (output,) = result.values()  # keyed by the (namespaced) task name
    return output


async def test_cookbook_reply_before_timeout(api: HelpdeskApi, api_hatchet: Hatchet) -> None:
    """Customer replies before timeout -> workflow resolves."""
    ticket_id = f"test-{uuid.uuid4().hex[:8]}"
    ticket = {
        "ticket_id": ticket_id,
        "customer_email": "alice@example.com",
        "subject": "Login broken",
        "body": "I can't log in since this morning.",
    }
    run_id = api.request("POST", "/v1/tickets", ticket).json()["run_id"]

    await api_hatchet.event.aio_push(
        REPLY_EVENT,
        {"message": "Actually, I just needed to clear my cookies. Fixed!"},
        scope=ticket_id,
    )

    result = await ticket_result(api_hatchet, run_id)

    assert result["ticket_id"] == ticket_id
    assert result["status"] == "resolved"
    assert result["triage_category"] is not None
    assert result["initial_reply"] is not None


async def test_cookbook_timeout_escalation(api: HelpdeskApi, api_hatchet: Hatchet) -> None:
    """No customer reply -> workflow escalates after timeout."""
    ticket_id = f"test-{uuid.uuid4().hex[:8]}"
    ticket = {
        "ticket_id": ticket_id,
        "customer_email": "bob@example.com",
        "subject": "Billing issue",
        "body": "I was charged twice for my subscription.",
        "reply_timeout_seconds": 3,
    }
    run_id = api.request("POST", "/v1/tickets", ticket).json()["run_id"]

    result = await ticket_result(api_hatchet, run_id)

    assert result["ticket_id"] == ticket_id
    assert result["status"] == "escalated"
    assert result["triage_category"] is not None
    assert result["initial_reply"] is not None
