"""The support worker a benchmark runs against: a real ``support-agent worker`` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The model is the fake API answering at once; the shared rate limit must not be what is measured.
FAKE_MODEL_ENV = {"SUPPORT_AGENT_LLM": "claude", "SUPPORT_AGENT_LLM_REQUESTS_PER_MINUTE": "100000"}


@contextmanager
def support_worker(namespace: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A worker in ``namespace`` with ``env`` on top of this process's; stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "worker"],
        env={**os.environ, **FAKE_MODEL_ENV, **env, "HATCHET_CLIENT_NAMESPACE": namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
