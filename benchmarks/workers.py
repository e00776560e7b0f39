"""The support worker a benchmark runs against: a real ``support-agent worker`` process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from tests.helpers import stop_process

# The model is the fake API answering at once; the shared rate limit must not be what is measured.
FAKE_MODEL_ENV = {"SUPPORT_AGENT_LLM": "claude", "SUPPORT_AGENT_LLM_REQUESTS_PER_MINUTE": "100000"}


# The benchmarks' own rate-limit key, always at 100,000/min. The engine keeps a
# limit's remaining count when a worker raises the limit, until its minute is
# over: after workers at the default 50/min (a test run), a benchmark on the
# shared key waited up to a minute. One fixed key, so that none pile up.
BENCH_RATE_LIMIT = {"SUPPORT_AGENT_LLM_RATE_LIMIT_KEY": "support-agent-benchmarks:llm-requests"}


@contextmanager
def running(
    args: list[str], namespace: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in ``namespace`` with ``env`` on top of this process's; stopped on exit."""
    process = subprocess.Popen(
        args,
        env={**os.environ, **env, "HATCHET_CLIENT_NAMESPACE": namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop_process(process)


def support_worker(
    namespace: str, env: dict[str, str]
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A ``support-agent worker`` on the fake model and the benchmarks' rate limit."""
    command = [sys.executable, "-m", "cli.main", "worker"]
    return running(command, namespace, {**FAKE_MODEL_ENV, **BENCH_RATE_LIMIT, **env})
