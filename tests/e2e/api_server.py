"""``support-agent serve`` as a subprocess, and a client that signs its requests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.helpers import stop_process
from tests.namespaces import remember
from tests.webhooks import new_secret, signed_headers

API_SECRET = new_secret()


class SigningAuth(requests.auth.AuthBase):
    """Signs each prepared request (body as sent) per Standard Webhooks."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes), "a streamed body cannot be signed"  # never sent here
        request.headers.update(signed_headers(API_SECRET, raw))
        return request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiServer:
    """``support-agent serve`` in a subprocess, in a given namespace."""

    def __init__(self, namespace: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            # The API registers the workflows it triggers: deleted at the session's end.
            "HATCHET_CLIENT_NAMESPACE": remember(namespace),
            "SUPPORT_AGENT_API_SECRET": API_SECRET,
        }
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "serve", "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=log,
            )
        self.log_path = log_path
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the API did not start: {log_path.read_text()}")
            time.sleep(0.2)

    def request(
        self, method: str, path: str, payload: Any = None, *, msg_id: str | None = None
    ) -> requests.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = signed_headers(API_SECRET, body, msg_id=msg_id)
        return requests.request(method, self.url + path, data=body, headers=headers, timeout=30)

    def stop(self) -> None:
        stop_process(self.process, timeout=20)
