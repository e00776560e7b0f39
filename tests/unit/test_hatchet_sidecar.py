"""setup/hatchet-sidecar's failures are said, and its exit status tells them.

The engine binaries are stand-ins (a script answering as support-engine,
hatchet-admin and its HTTP probes), so no database or build is needed.
"""

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[2] / "setup"

# support-engine's stand-in: its two commands, or an engine that answers 200
# everywhere (with the sidecar's instance header, as support-engine does) for
# STUB_ENGINE_SECONDS and then exits with STUB_ENGINE_EXIT. The environment it
# was started with goes to STUB_ENV_FILE.
STUB = f"""#!{sys.executable}
import http.server, json, os, sys, threading, time
args = sys.argv[1:]
if args[:1] == ["admin-credentials"]:
    print("ADMIN_EMAIL=admin@example.com\\nADMIN_PASSWORD=Stub1234Stub")
    sys.exit(0)
if args[:1] == ["sidecar-token"]:
    code = int(os.environ.get("STUB_TOKEN_EXIT", "0"))
    if code == 0:
        print("ey.stub.token")
    sys.exit(code)

if os.environ.get("STUB_ENV_FILE"):
    with open(os.environ["STUB_ENV_FILE"], "w") as out:
        json.dump(dict(os.environ), out)

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Support-Engine-Instance", os.environ.get("HATCHET_ENGINE_INSTANCE", ""))
        self.end_headers()

bind = os.environ.get("HATCHET_ENGINE_BIND_ADDRESS", "127.0.0.1")
server = http.server.HTTPServer((bind, int(os.environ["SERVER_PORT"])), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(float(os.environ.get("STUB_ENGINE_SECONDS", "60")))
sys.exit(int(os.environ.get("STUB_ENGINE_EXIT", "0")))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sidecar(
    tmp_path: Path, api_port: int | None = None, **env: str
) -> tuple[subprocess.Popen[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "support-engine").write_text(STUB)
    (bin_dir / "hatchet-admin").write_text("#!/bin/sh\nexit 0\n")
    for name in ("support-engine", "hatchet-admin"):
        (bin_dir / name).chmod(0o755)
    handshake = tmp_path / "handshake.json"
    flags = {
        "-handshake-file": str(handshake),
        "-database-url": "postgresql://u@127.0.0.1:1/db",
        "-grpc-port": str(free_port()),
        "-api-port": str(api_port or free_port()),
    }
    command = ["bash", str(SETUP / "hatchet-sidecar"), *(w for kv in flags.items() for w in kv)]
    process = subprocess.Popen(
        [*command, "-no-migrations"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "SUPPORT_AGENT_CACHE_DIR": str(tmp_path / "cache"),
            "SUPPORT_AGENT_STATE_DIR": str(tmp_path / "state"),
            "HATCHET_ENGINE_STATE_DIR": str(tmp_path / "engine"),
            "HATCHET_BIN_DIR": str(bin_dir),
            **env,
        },
    )
    return process, handshake


def finish(process: subprocess.Popen[str], close_stdin: bool = False) -> tuple[int, str]:
    """Wait for the sidecar's exit; its stdin stays open unless close_stdin."""
    assert process.stdin is not None and process.stderr is not None
    if close_stdin:
        process.stdin.close()
    try:
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdin.close()
    return code, process.stderr.read()


def test_a_failed_token_command_is_said(tmp_path: Path) -> None:
    process, _ = start_sidecar(tmp_path, STUB_TOKEN_EXIT="1")
    code, err = finish(process)
    assert code == 1
    assert "could not get an API token" in err


def test_an_engine_that_dies_fails_the_sidecar(tmp_path: Path) -> None:
    process, handshake = start_sidecar(tmp_path, STUB_ENGINE_SECONDS="2", STUB_ENGINE_EXIT="3")
    code, err = finish(process)
    assert handshake.exists(), err  # it was up, then died
    assert code != 0
    assert "support-engine exited (code 3)" in err


def test_closing_stdin_is_an_orderly_stop(tmp_path: Path) -> None:
    process, handshake = start_sidecar(tmp_path)
    wait_for_handshake(process, handshake)
    assert handshake.exists()
    code, err = finish(process, close_stdin=True)
    assert code == 0, err


def wait_for_handshake(process: subprocess.Popen[str], handshake: Path) -> None:
    deadline = time.monotonic() + 30
    while not handshake.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)


def test_another_engine_on_the_port_is_not_taken_for_its_own(tmp_path: Path) -> None:
    """A second start whose engine cannot have the port must not report the first's as ready."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Ok)  # the first start's engine
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        port = int(other.server_address[1])
        process, handshake = start_sidecar(tmp_path, api_port=port)
        code, err = finish(process)
    finally:
        other.shutdown()
    assert code == 1
    assert "support-engine exited during start-up" in err
    assert not handshake.exists()
    assert not (tmp_path / "state" / "dashboard.json").exists()


@pytest.mark.parametrize(
    ("bind", "host", "cookie_domain"),
    [
        ("127.0.0.2", "127.0.0.2", "127.0.0.2"),
        ("0.0.0.0", "127.0.0.1", "localhost"),
        ("127.0.0.1", "127.0.0.1", "localhost"),
    ],
)
def test_clients_are_handed_the_bind_address(
    tmp_path: Path, bind: str, host: str, cookie_domain: str
) -> None:
    env_file = tmp_path / "engine-env.json"
    process, handshake = start_sidecar(
        tmp_path, HATCHET_ENGINE_BIND_ADDRESS=bind, STUB_ENV_FILE=str(env_file)
    )
    wait_for_handshake(process, handshake)
    try:
        assert handshake.exists(), process.poll()
        hs = json.loads(handshake.read_text())
        engine_env = json.loads(env_file.read_text())
        dashboard = json.loads((tmp_path / "state" / "dashboard.json").read_text())
    finally:
        code, err = finish(process, close_stdin=True)
    assert code == 0, err
    api_port = engine_env["SERVER_PORT"]
    grpc_port = engine_env["SERVER_GRPC_PORT"]
    assert hs["grpc_address"] == f"{host}:{grpc_port}"
    assert hs["api_url"] == f"http://{host}:{api_port}"
    assert engine_env["SERVER_URL"] == f"http://{host}:{api_port}"
    assert engine_env["SERVER_GRPC_BROADCAST_ADDRESS"] == f"{host}:{grpc_port}"
    assert engine_env["SERVER_AUTH_COOKIE_DOMAIN"] == cookie_domain
    assert dashboard["api_url"] == f"http://{host}:{api_port}"
    assert dashboard["url"] == f"http://{cookie_domain}:{api_port}/"
    # The engine stops by itself if this sidecar is killed (support-engine's parent.go).
    assert engine_env["HATCHET_ENGINE_PARENT_PID"] == str(process.pid)


@pytest.mark.parametrize("existing", [True, False])
def test_the_state_dir_is_owner_only(tmp_path: Path, existing: bool) -> None:
    state = tmp_path / "state"
    if existing:
        state.mkdir()
        state.chmod(0o755)
    done = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{SETUP / "lib.sh"}"'],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "SUPPORT_AGENT_CACHE_DIR": str(tmp_path / "cache"),
            "SUPPORT_AGENT_STATE_DIR": str(state),
        },
    )
    assert done.returncode == 0, done.stderr
    assert state.stat().st_mode & 0o777 == 0o700
