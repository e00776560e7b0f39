"""setup/hatchet-sidecar's failures are said, and its exit status tells them.

The engine binaries are stand-ins (a script answering as support-engine,
hatchet-admin and its HTTP probes), so no database or build is needed.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[2] / "setup"

# support-engine's stand-in: its two commands, or an engine that answers 200
# everywhere for STUB_ENGINE_SECONDS and then exits with STUB_ENGINE_EXIT.
STUB = f"""#!{sys.executable}
import http.server, os, sys, threading, time
args = sys.argv[1:]
if args[:1] == ["admin-credentials"]:
    print("ADMIN_EMAIL=admin@example.com\\nADMIN_PASSWORD=Stub1234Stub")
    sys.exit(0)
if args[:1] == ["sidecar-token"]:
    code = int(os.environ.get("STUB_TOKEN_EXIT", "0"))
    if code == 0:
        print("ey.stub.token")
    sys.exit(code)

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

server = http.server.HTTPServer(("127.0.0.1", int(os.environ["SERVER_PORT"])), Ok)
threading.Thread(target=server.serve_forever, daemon=True).start()
time.sleep(float(os.environ.get("STUB_ENGINE_SECONDS", "60")))
sys.exit(int(os.environ.get("STUB_ENGINE_EXIT", "0")))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sidecar(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], Path]:
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
        "-api-port": str(free_port()),
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
    deadline = time.monotonic() + 30
    while not handshake.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert handshake.exists()
    code, err = finish(process, close_stdin=True)
    assert code == 0, err


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
