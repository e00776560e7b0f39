"""The HTTP API's front door and input checks, with no engine behind it.

Everything here must be refused (or answered) before the engine is needed:
with no engine running, a request that got past the checks would be a 503.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict, Unpack

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

import api.deliveries as deliveries_module
from api.app import MAX_JSON_BODY_BYTES, TicketLock, create_app, one_at_a_time
from api.deliveries import FORGET_EVERY_SECONDS, KEEP_SECONDS, Answer, DeliveryLog
from tests.webhooks import multipart, new_secret, signed_headers
from workflows.settings import EvidenceSettings, Settings

SECRET = new_secret()
TICKET = {"customer_email": "dana@example.com", "subject": "Export broken", "body": "It fails."}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(
        state_dir=tmp_path, api_secret=SecretStr(SECRET), api_max_body_bytes=64 * 1024
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


def post(client: TestClient, path: str, payload: Any, **sign: Any) -> Any:
    body = json.dumps(payload).encode()
    return client.post(path, content=body, headers=signed_headers(SECRET, body, **sign))


def test_health_needs_no_signature_and_readiness_says_the_engine_is_down(
    client: TestClient,
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "no Hatchet engine is running" in ready.json()["error"]


def test_the_openapi_document_is_served(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert {"/v1/tickets", "/v1/tickets/{ticket_id}", "/v1/tickets/{ticket_id}/replies"} <= set(
        document["paths"]
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
        {"webhook-id": "msg_1", "webhook-timestamp": "x", "webhook-signature": "garbage"},
    ],
)
def test_unsigned_or_badly_signed_requests_are_401(client: TestClient, headers: Any) -> None:
    for method, path in (("POST", "/v1/tickets"), ("GET", "/v1/tickets"), ("GET", "/v1/nope")):
        response = client.request(method, path, content=b"{}", headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"].startswith("unauthenticated")


def test_a_signature_for_another_body_or_secret_or_time_is_401(client: TestClient) -> None:
    body = json.dumps(TICKET).encode()
    tampered = client.post("/v1/tickets", content=body + b" ", headers=signed_headers(SECRET, body))
    assert tampered.status_code == 401
    other = client.post("/v1/tickets", content=body, headers=signed_headers(new_secret(), body))
    assert other.status_code == 401
    old = post(client, "/v1/tickets", TICKET, at=datetime.now(tz=UTC) - timedelta(minutes=6))
    assert old.status_code == 401 and "too old" in old.json()["error"]


def test_a_get_signs_an_empty_body(client: TestClient) -> None:
    response = client.get("/v1/tickets", headers=signed_headers(SECRET, b""))
    assert response.status_code == 503  # past the door: only the engine is missing


def test_oversized_bodies_are_refused_before_they_are_read(client: TestClient) -> None:
    big = b"x" * (64 * 1024 + 1)
    declared = client.post("/v1/tickets", content=big, headers=signed_headers(SECRET, big))
    assert declared.status_code == 413

    def chunks() -> Any:  # no Content-Length: refused as the stream passes the limit
        for _ in range(100):
            yield b"x" * 4096

    streamed = client.post("/v1/tickets", content=chunks(), headers=signed_headers(SECRET))
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"body": "  "}, "body", "the body is empty"),
        ({"subject": "x" * 301}, "subject", "the subject is 301 characters; the limit is 300"),
        ({"customer_email": "nope"}, "customer_email", "not a valid customer email address"),
        ({"ticket_id": "../etc"}, "ticket_id", "not a valid ticket id: '../etc'"),
        ({"reply_timeout_seconds": 0}, "reply_timeout_seconds", "greater than 0"),
        ({"unexpected": 1}, "unexpected", "Extra inputs are not permitted"),
        ({"body": 5}, "body", "valid string"),
        ({"body": "a\x00b"}, "body", "the body contains a NUL character"),
        # A lone surrogate cannot even be parsed as JSON text: refused as invalid JSON.
        ({"subject": "\ud800"}, "", "Invalid JSON"),
        # Content never travels inside JSON: attachments are multipart file parts.
        (
            {"attachments": [{"name": "a.log", "content_base64": "eA=="}]},
            "attachments",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_bad_tickets_are_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = post(client, "/v1/tickets", {**TICKET, **change})
    assert response.status_code == 422, response.text
    assert (response.json()["field"] or "") == field
    assert message in response.json()["error"]


def post_multipart(
    client: TestClient, fields: dict[str, str], files: list[tuple[str, bytes]], **kw: Any
) -> Any:
    body, content_type = multipart(fields, files, **kw)
    headers = {**signed_headers(SECRET, body), "content-type": content_type}
    return client.post("/v1/tickets", content=body, headers=headers)


class _Limits(TypedDict, total=False):
    max_file_bytes: int
    max_ticket_bytes: int
    max_files: int


def small_limits(tmp_path: Path, **limits: Unpack[_Limits]) -> TestClient:
    evidence = EvidenceSettings(**limits)
    settings = Settings(state_dir=tmp_path, api_secret=SecretStr(SECRET), evidence=evidence)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        ([("a.log", b"x" * 1025)], 413, "attachment a.log is 1025 bytes; the limit is 1024"),
        ([("a.log", b"x")] * 2, 422, "duplicate attachment names: a.log"),
        ([(f"f{i}.log", b"x") for i in range(4)], 413, "4 attachments; the limit is 3"),
        ([("a.log", b"x" * 1000), ("b.log", b"x" * 1000)], 413, "attachments total 2000 bytes"),
        ([("../x", b"x")], 422, "attachment name '../x' is not allowed"),
        ([(".env", b"x")], 422, "attachment name '.env' is not allowed"),
        ([("a.zip", b"x"), ("a.zip.d", b"x")], 422, "taken by the unpacked archive a.zip"),
    ],
)
def test_attachments_over_a_limit_or_badly_named_are_refused_before_anything_is_stored(
    tmp_path: Path, files: list[tuple[str, bytes]], status: int, message: str
) -> None:
    client = small_limits(tmp_path, max_file_bytes=1024, max_ticket_bytes=1500, max_files=3)
    response = post_multipart(client, TICKET, files)
    assert response.status_code == status, response.text
    assert response.json()["field"] == "attachments" and message in response.json()["error"]
    assert not (tmp_path / "evidence").exists()


def test_a_multipart_ticket_streams_through_the_signature_check(tmp_path: Path) -> None:
    client = small_limits(tmp_path)
    data = os.urandom(3 * 1024 * 1024)  # binary, larger than the in-memory spool
    body, content_type = multipart(TICKET, [("dump.bin", data)])
    headers = {**signed_headers(SECRET, body), "content-type": content_type}
    tampered = client.post("/v1/tickets", content=body[:-10] + b"X" + body[-9:], headers=headers)
    assert tampered.status_code == 401 and "No matching signature" in tampered.json()["error"]

    def chunks() -> Any:  # no Content-Length: spooled and verified as it streams
        for i in range(0, len(body), 100_000):
            yield body[i : i + 100_000]

    accepted = client.post("/v1/tickets", content=chunks(), headers=headers)
    # Past the door and the checks: only the engine is missing, so nothing was stored.
    assert accepted.status_code == 503, accepted.text
    assert not (tmp_path / "evidence").exists()


def test_a_json_body_has_a_small_limit_of_its_own_that_any_valid_ticket_fits(
    tmp_path: Path,
) -> None:
    """JSON is parsed whole in memory: it may not use the upload limit (GiBs)."""
    client = small_limits(tmp_path)  # the default upload limit: 64 MiB + 16 MiB
    padding = "x" * MAX_JSON_BODY_BYTES
    for path, payload in [
        ("/v1/tickets", {**TICKET, "body": padding}),
        ("/v1/tickets/T-1/replies", {"message": padding}),
    ]:
        response = post(client, path, payload)
        assert response.status_code == 413, response.text
        assert f"larger than {MAX_JSON_BODY_BYTES} bytes" in response.json()["error"]
        assert "multipart/form-data" in response.json()["error"]
    # The largest valid ticket, escaped as much as JSON allows (an astral
    # character is two \uXXXX escapes), passes the door: only the engine is missing.
    largest = {**TICKET, "subject": "\U0001f600" * 300, "body": "\U0001f600" * 100_000}
    assert len(json.dumps(largest)) > 1024 * 1024
    assert post(client, "/v1/tickets", largest).status_code == 503


async def test_a_tickets_lock_goes_with_its_last_user_however_it_left() -> None:
    locks: dict[str, TicketLock] = {}
    order: list[str] = []

    async def submit(name: str, fail: bool) -> None:
        async with one_at_a_time(locks, "T-1"):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")
            if fail:
                raise RuntimeError("refused")  # a 409, 422 or 503 on the way out

    outcomes = await asyncio.gather(
        submit("a", True), submit("b", False), submit("c", True), return_exceptions=True
    )
    assert [type(o) for o in outcomes] == [RuntimeError, type(None), RuntimeError]
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]  # one at a time
    assert locks == {}


def test_files_in_other_parts_are_refused(tmp_path: Path) -> None:
    response = post_multipart(small_limits(tmp_path), TICKET, [("a.log", b"x")], name="file")
    assert response.status_code == 422 and response.json()["field"] == "file"


def test_not_json_is_422(client: TestClient) -> None:
    body = b"{not json"
    response = client.post("/v1/tickets", content=body, headers=signed_headers(SECRET, body))
    assert response.status_code == 422


def test_bad_replies_and_paths_are_422(client: TestClient) -> None:
    assert post(client, "/v1/tickets/T-1/replies", {"message": ""}).json()["field"] == "message"
    response = post(client, "/v1/tickets/bad%20id/replies", {"message": "hi"})
    assert response.status_code == 422 and response.json()["field"] == "ticket_id"


def test_a_replayed_delivery_gets_the_first_answer_and_runs_once(client: TestClient) -> None:
    first = post(client, "/v1/tickets", {**TICKET, "body": " "}, msg_id="msg_same")
    again = post(client, "/v1/tickets", {**TICKET, "body": " "}, msg_id="msg_same")
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    other_body = post(client, "/v1/tickets", TICKET, msg_id="msg_same")
    assert other_body.status_code == 409 and "another request" in other_body.json()["error"]


def test_a_failure_on_our_side_lets_the_retry_through(client: TestClient) -> None:
    # No engine: a 503, which must not be remembered as the answer to this id.
    assert post(client, "/v1/tickets", TICKET, msg_id="msg_retry").status_code == 503
    assert post(client, "/v1/tickets", TICKET, msg_id="msg_retry").status_code == 503


class _Clock:
    """Stands in for the ``time`` module inside ``api.deliveries``."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0
        self.since_boot = 1_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.since_boot


def test_a_running_api_forgets_deliveries_older_than_a_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(deliveries_module, "time", clock)
    log = DeliveryLog(tmp_path / "deliveries.sqlite")
    assert log.claim("msg_old", "f1")
    log.record("msg_old", Answer(202, b"{}"))
    clock.now += KEEP_SECONDS + 1
    assert not log.claim("msg_old", "f1")  # within the minute: not looked at yet
    clock.since_boot += FORGET_EVERY_SECONDS
    assert log.claim("msg_new", "f2")  # a claim a minute later forgets what is a day old
    assert log.claim("msg_old", "f1")
    log.close()


def test_the_api_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SUPPORT_AGENT_API_SECRET is not set"):
        create_app(Settings(state_dir=tmp_path))
    with pytest.raises(ValueError, match="not a valid whsec_"):
        create_app(Settings(state_dir=tmp_path, api_secret=SecretStr("whsec_***")))
    # A key anyone could guess: refused, and never quoted.
    for weak, size in (("whsec_AA==", 1), ("cGFzc3dvcmQ=", 8)):
        with pytest.raises(ValueError, match=f"has a {size}-byte key; at least 24") as refused:
            create_app(Settings(state_dir=tmp_path, api_secret=SecretStr(weak)))
        assert weak not in str(refused.value)
    app = create_app(Settings(state_dir=tmp_path), insecure_no_auth=True)
    unsigned = TestClient(app, raise_server_exceptions=False).post("/v1/tickets", json=TICKET)
    assert unsigned.status_code == 503  # let in, and stopped only by the missing engine
