import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from workflows.engine import (
    EngineUnavailableError,
    connect,
    embedded_options,
    engine_environment,
    process_start,
    running_engine,
    split_password,
    stop_engine,
)
from workflows.settings import Settings


def _write(path: Path, pid: int, started: str | None = None) -> None:
    path.write_text(
        json.dumps(
            {
                "token": "ey.x.y",
                "tenant_id": "t",
                "grpc_address": "127.0.0.1:1",
                "api_url": "http://127.0.0.1:2",
                "pid": pid,
                **({"started": started} if started else {}),
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


def test_an_exited_engine_started_by_this_process_is_not_running(settings: Settings) -> None:
    # Not waited for: an exited child is a zombie until reaped, and signal 0 still reaches it.
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    _write(settings.engine_file, exited.pid)
    deadline = time.monotonic() + 10
    while running_engine(settings) is not None:
        assert time.monotonic() < deadline, "the exited child still counts as a running engine"
        time.sleep(0.05)


def test_stopping_an_engine_this_process_started_returns_when_it_exits(settings: Settings) -> None:
    # What a test restarting the session's engine does: stop, from the process that started it.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _write(settings.engine_file, child.pid)
    started = time.monotonic()
    assert stop_engine(settings, timeout=30) is True
    assert time.monotonic() - started < 10
    assert running_engine(settings) is None


def test_a_pid_given_to_another_process_is_not_the_engine(settings: Settings) -> None:
    """``engine stop`` must never signal a process that merely reuses the engine's pid."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start(other.pid)
        assert started is not None
        _write(settings.engine_file, other.pid, started=str(int(started) - 1))
        assert running_engine(settings) is None
        assert stop_engine(settings, timeout=1) is False
        assert other.poll() is None  # not signalled
        _write(settings.engine_file, other.pid, started=started)
        assert running_engine(settings) is not None
    finally:
        other.kill()
        other.wait()


def test_the_engine_inherits_no_credentials_it_does_not_need() -> None:
    caller = {
        "PATH": "/usr/bin",
        "HOME": "/home/a",
        "LC_ALL": "C.UTF-8",
        "ANTHROPIC_API_KEY": "sk-ant-x",
        "AWS_SECRET_ACCESS_KEY": "a",
        "SUPPORT_AGENT_API_SECRET": "whsec_x",
        "SUPPORT_AGENT_DELIVERY_SECRET": "whsec_y",
        "SUPPORT_AGENT_EVIDENCE__S3_ACCESS_KEY_ID": "k",
        "SUPPORT_AGENT_EVIDENCE__S3_SECRET_ACCESS_KEY": "s",
        "HATCHET_CLIENT_TOKEN": "ey.x",
        "SUPPORT_AGENT_STATE_DIR": "/var/lib/sa",
        "HATCHET_CLIENT_EMBEDDED_DATABASE_URL": "postgresql://h/db",
        "HATCHET_ENGINE_BIND_ADDRESS": "127.0.0.1",
        "SERVER_GRPC_MAX_MSG_SIZE": "1",
        "SERVER_ENCRYPTION_MASTER_KEYSET_FILE": "/etc/keys",
        "PGPASSWORD": "p",
    }
    assert engine_environment(caller) == {
        "PATH": "/usr/bin",
        "HOME": "/home/a",
        "LC_ALL": "C.UTF-8",
        "SUPPORT_AGENT_STATE_DIR": "/var/lib/sa",
        "HATCHET_CLIENT_EMBEDDED_DATABASE_URL": "postgresql://h/db",
        "HATCHET_ENGINE_BIND_ADDRESS": "127.0.0.1",
        "SERVER_GRPC_MAX_MSG_SIZE": "1",
        "SERVER_ENCRYPTION_MASTER_KEYSET_FILE": "/etc/keys",  # the engine's own
        "PGPASSWORD": "p",
    }


def test_the_engine_file_is_owner_only_from_the_start(settings: Settings) -> None:
    from workflows.engine import _write_atomic

    seen: list[int] = []  # the file's mode whenever it is touched after its creation
    replace, chmod = os.replace, Path.chmod

    def spy_replace(src: Any, dst: Any) -> None:
        seen.append(os.stat(src).st_mode & 0o777)
        replace(src, dst)

    def spy_chmod(path: Path, mode: int, **kw: Any) -> None:
        if not path.is_dir():  # the state directory is made owner-only too
            seen.append(path.stat().st_mode & 0o777)
        chmod(path, mode, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", spy_replace)
        patch.setattr(Path, "chmod", spy_chmod)
        _write_atomic(settings.engine_file, "{}")
    assert seen and set(seen) == {0o600}, seen
    assert settings.engine_file.stat().st_mode & 0o777 == 0o600


def test_an_existing_state_dir_is_made_owner_only(tmp_path: Path) -> None:
    from workflows.engine import _write_atomic

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # whatever the umask
    _write_atomic(Settings(state_dir=state).engine_file, "{}")
    assert state.stat().st_mode & 0o777 == 0o700


def test_engine_start_makes_an_existing_state_dir_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workflows.engine as engine

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)

    class Exited:
        pid, returncode = 1, 1

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def poll(self) -> int:
            return 1

    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.setattr(engine, "embedded_options", lambda settings: None)
    monkeypatch.setattr(subprocess, "Popen", Exited)
    with pytest.raises(EngineUnavailableError, match="exited during start-up"):
        engine.start_engine_background(Settings(state_dir=state))
    assert state.stat().st_mode & 0o777 == 0o700


def test_garbage_engine_file_is_ignored(settings: Settings) -> None:
    settings.engine_file.write_text("{not json")
    assert running_engine(settings) is None


def test_connect_without_engine_says_how_to_start_one(settings: Settings) -> None:
    with pytest.raises(EngineUnavailableError, match="support-agent engine start"):
        connect(settings)


def test_the_database_url_is_the_one_set_up_wrote(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_EMBEDDED_DATABASE_URL", raising=False)
    settings = Settings(state_dir=settings.state_dir)
    url = "postgresql://hatchet:generated@127.0.0.1:5432/hatchet?sslmode=disable"
    (settings.state_dir / "database-url").write_text(url + "\n")
    assert settings.database_url() == url
    # The SDK puts it on the sidecar's command line: without the password.
    without = "postgresql://hatchet@127.0.0.1:5432/hatchet?sslmode=disable"
    assert embedded_options(settings).database_url == without


@pytest.mark.parametrize(
    ("url", "without", "password"),
    [
        (
            "postgresql://u:p%40ss%3Aw@h:5432/db?sslmode=disable",
            "postgresql://u@h:5432/db?sslmode=disable",
            "p@ss:w",
        ),
        ("postgres://u@h/db", "postgres://u@h/db", None),
        ("postgresql://h/db?x=a@b", "postgresql://h/db?x=a@b", None),
        ("host=h user=u password=p dbname=d", "host=h user=u  dbname=d", "p"),
        ("password='a b\\'c' host=h", "host=h", "a b'c"),
        ("host=h dbname=d", "host=h dbname=d", None),
        ("host=h password=a\\ b dbname=d", "host=h  dbname=d", "a b"),
        # Nothing to take off: exactly as given (a Unix socket's empty host included).
        ("postgresql:///hatchet?host=/var/run/postgresql", None, None),
        (
            "postgresql://u@h/db?options=-c%20x&password=p&sslmode=disable",
            "postgresql://u@h/db?options=-c%20x&sslmode=disable",
            "p",
        ),
        (
            "postgresql://u@h/db?sslmode=disable&password=x%20y",
            "postgresql://u@h/db?sslmode=disable",
            "x y",
        ),
    ],
)
def test_the_password_is_split_off_the_url(
    url: str, without: str | None, password: str | None
) -> None:
    assert split_password(url) == (without or url, password)


def test_the_variable_wins_over_the_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    (settings.state_dir / "database-url").write_text("postgresql://from-file/db\n")
    monkeypatch.setenv("HATCHET_CLIENT_EMBEDDED_DATABASE_URL", "postgresql://from-env/db")
    assert Settings(state_dir=settings.state_dir).database_url() == "postgresql://from-env/db"


def test_no_database_says_how_to_get_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HATCHET_CLIENT_EMBEDDED_DATABASE_URL", raising=False)
    settings = Settings(state_dir=settings.state_dir)
    # No file, and no well-known fallback: there is no default password to fall back on.
    with pytest.raises(
        EngineUnavailableError, match=r"make setup.*HATCHET_CLIENT_EMBEDDED_DATABASE_URL"
    ):
        embedded_options(settings)


# A stand-in for the sidecar with the SDK's contract: it notes each start in
# HATCHET_STUB_STARTS, writes its handshake after HATCHET_STUB_DELAY seconds (or, with
# HATCHET_STUB_FAIL, says why it failed as setup/hatchet-sidecar does and exits 1),
# then runs until its stdin closes. (The launcher passes its sidecar HATCHET_*
# variables only.)
STUB_SIDECAR = f"""#!{sys.executable}
import json, os, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
with open(os.environ["HATCHET_STUB_STARTS"], "a") as out:
    out.write(f"{{os.getpid()}}\\n")
if os.environ.get("HATCHET_STUB_FAIL"):
    why = "support-engine exited during start-up; see " + os.environ["HATCHET_STUB_FAIL"]
    print("[setup] error: " + why, file=sys.stderr)
    sys.exit(1)
time.sleep(float(os.environ.get("HATCHET_STUB_DELAY", "1")))
with open(args["-handshake-file"] + ".tmp", "w") as out:
    json.dump({{"token": "ey.stub", "tenant_id": "t", "grpc_address": "127.0.0.1:1",
               "api_url": "http://127.0.0.1:2"}}, out)
os.rename(args["-handshake-file"] + ".tmp", args["-handshake-file"])
sys.stdin.read()
"""


def _stub_engine_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    sidecar = tmp_path / "sidecar"
    sidecar.write_text(STUB_SIDECAR)
    sidecar.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HATCHET_", "SUPPORT_AGENT_"))}
    return {
        **env,
        "SUPPORT_AGENT_STATE_DIR": str(tmp_path / "state"),
        "HATCHET_CLIENT_EMBEDDED_BINARY_PATH": str(sidecar),
        "HATCHET_CLIENT_EMBEDDED_DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
        "SUPPORT_AGENT_ENGINE_START_TIMEOUT_SECONDS": "30",
        "HATCHET_STUB_STARTS": str(tmp_path / "starts"),
        **extra,
    }


def _engine_start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "engine", "start"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_engine_starts_at_once_start_one_engine(tmp_path: Path) -> None:
    """The second start waits for the first and reports its engine (it used to start a
    second sidecar, which took the first's engine for its own)."""
    env = _stub_engine_env(tmp_path)
    starts = [_engine_start(env) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=60) for p in starts]
        for p, (_, err) in zip(starts, outputs, strict=True):
            assert p.returncode == 0, err
        sidecars = (tmp_path / "starts").read_text().split()
        assert len(sidecars) == 1, f"{len(sidecars)} sidecars started"
        assert outputs[0][0] == outputs[1][0]  # the same engine (pid, addresses)
    finally:
        stop_engine(Settings(state_dir=tmp_path / "state"), timeout=10)
        # A second sidecar (the failure this test is for) would outlive it: its
        # launcher stops once it is gone.
        for pid in (tmp_path / "starts").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


def test_a_stop_during_a_start_stops_the_engine_it_started(tmp_path: Path) -> None:
    """It used to find no engine.json yet, say none ran, and leave the engine running."""
    env = _stub_engine_env(tmp_path, HATCHET_STUB_DELAY="2")
    settings = Settings(state_dir=tmp_path / "state")
    start = _engine_start(env)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "starts").exists():  # the sidecar runs: the start holds the lock
            assert time.monotonic() < deadline, "the stub sidecar never started"
            time.sleep(0.05)
        assert stop_engine(settings, timeout=10)
        start.communicate(timeout=60)
        assert running_engine(settings) is None
    finally:
        stop_engine(settings, timeout=10)


def test_a_failed_start_quotes_the_sidecar_and_the_engine_log(tmp_path: Path) -> None:
    engine_log = tmp_path / "engine.log"
    engine_log.write_text(
        "hatchet-sidecar: starting, earlier\n"
        "2026/01/01 support-engine: an earlier start's trouble\n"
        "hatchet-sidecar: starting, now\n"
        "\x1b[90m2026-11-30T00:00:00Z\x1b[0m \x1b[32mINF\x1b[0m \x1b[1mstarting the engine\x1b[0m\n"
        "2026/11/30 00:00:01 support-engine: listening on 127.0.0.1:18080: address already in use\n"
        # The sidecar stopping the engine: noise, not the reason.
        + "ERR error listening for multiplexed messages error=\"context canceled\"\n" * 6
        + "\n"
    )
    env = _stub_engine_env(tmp_path, HATCHET_STUB_FAIL=str(engine_log))
    start = _engine_start(env)
    _, err = start.communicate(timeout=60)
    assert start.returncode == 1
    assert "support-engine exited during start-up; see " + str(engine_log) in err
    assert "support-engine: listening on 127.0.0.1:18080: address already in use" in err
    assert "earlier start" not in err
    assert "\x1b[" not in err
    assert "context canceled" not in err
