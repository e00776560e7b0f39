"""``support-agent dashboard`` and the dashboard links, from the files the engine writes."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

import pytest

from cli.main import main
from workflows.dashboard import Dashboard, find_dashboard
from workflows.settings import Settings

TENANT = "707d0855-80ab-4e1f-a156-f1c4546cbf52"


def engine_files(state: Path, *, built: bool = True) -> Path:
    credentials = state / "dashboard-credentials.json"
    credentials.write_text(json.dumps({"email": "admin@example.com", "password": "Xy7generated"}))
    credentials.chmod(0o600)
    (state / "engine.json").write_text(
        json.dumps(
            {
                "token": "ey.x.y",
                "tenant_id": TENANT,
                "grpc_address": "127.0.0.1:1",
                "api_url": "http://127.0.0.1:2",
                "pid": os.getpid(),
            }
        )
    )
    (state / "dashboard.json").write_text(
        json.dumps(
            {
                "url": "http://localhost:8080/",
                "credentials_file": str(credentials),
                "email": "admin@example.com",
                "built": built,
            }
        )
    )
    return credentials


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv("SUPPORT_AGENT_STATE_DIR", str(tmp_path))
    return tmp_path


def test_prints_the_url_and_where_the_password_is(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = engine_files(state)
    assert main(["dashboard"]) == 0
    out = capsys.readouterr().out
    assert "dashboard: http://localhost:8080/" in out
    assert "log in as admin@example.com" in out and str(credentials) in out
    assert "Xy7generated" not in out  # only on request
    assert main(["dashboard", "--show-password"]) == 0
    assert "password: Xy7generated" in capsys.readouterr().out


def test_without_an_engine_it_says_how_to_start_one(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard"]) == 1
    assert "support-agent engine start" in capsys.readouterr().err


def test_links_open_a_run_a_task_and_a_ticket_filtered_run_list(state: Path) -> None:
    engine_files(state)
    board = find_dashboard(Settings(), TENANT, "http://unused")
    assert isinstance(board, Dashboard)
    assert board.run_url("r1") == f"http://localhost:8080/tenants/{TENANT}/runs/r1"
    query = urllib.parse.urlparse(board.ticket_url("T-1")).query
    (filters,) = urllib.parse.parse_qs(query).values()
    assert json.loads(filters[0]) == {"m": ["ticket_id:T-1"], "tw": "7d"}


@pytest.mark.parametrize("content", ['["http://x"]', '{"built": true}', '{"url": 5}', "null"])
def test_a_dashboard_file_not_as_the_sidecar_writes_it_means_none(
    state: Path, content: str
) -> None:
    engine_files(state)
    (state / "dashboard.json").write_text(content)
    assert find_dashboard(Settings(), TENANT, "http://unused") is None
