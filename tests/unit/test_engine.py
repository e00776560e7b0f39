import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.engine import EngineUnavailableError, connect, running_engine
from workflows.settings import Settings


def _write(path: Path, pid: int) -> None:
    path.write_text(
        json.dumps(
            {
                "token": "ey.x.y",
                "tenant_id": "t",
                "grpc_address": "127.0.0.1:1",
                "api_url": "http://127.0.0.1:2",
                "pid": pid,
            }
        )
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    return Settings(state_dir=tmp_path)


def test_engine_file_of_a_live_process_is_used(settings: Settings) -> None:
    _write(settings.engine_file, os.getpid())
    info = running_engine(settings)
    assert info is not None and info.api_url == "http://127.0.0.1:2"


def test_engine_file_of_a_dead_process_is_ignored(settings: Settings) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write(settings.engine_file, dead.pid)
    assert running_engine(settings) is None


def test_garbage_engine_file_is_ignored(settings: Settings) -> None:
    settings.engine_file.write_text("{not json")
    assert running_engine(settings) is None


def test_connect_without_engine_says_how_to_start_one(settings: Settings) -> None:
    with pytest.raises(EngineUnavailableError, match="support-agent engine start"):
        connect(settings)
