"""Helpers shared by the test suites."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from typing import Any, NoReturn

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.naming import Labels
from workflows.engine import split_password
from workflows.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """A missing service fails the run in CI and skips the test on a developer's machine."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def engine_sql(settings: Settings, query: str) -> list[list[str]]:
    """Rows of ``query`` on the embedded engine's database, through psql (fields as text).

    For what the engine's API does not show (its queues, its database's size).
    The password goes in psql's environment, not on a command line other
    local users can read. Raises ``CalledProcessError`` on a refused query.
    """
    url, password = split_password(settings.database_url())
    env = {**os.environ, "PGPASSWORD": password} if password is not None else None
    result = subprocess.run(
        ["psql", url, "-X", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
        capture_output=True, text=True, timeout=30, check=True, env=env,
    )  # fmt: skip
    return [line.split("\t") for line in result.stdout.splitlines()]


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it is not gone within ``timeout``; reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The label keys the sandbox puts on a code run's container (the default prefix).
SANDBOX_LABELS = Labels(SandboxConfig().label_prefix)


def labelled_containers(label: str) -> list[dict[str, Any]]:
    """Containers, running or not, matching a label filter, as one Docker list call returns them.

    No inspect per container (as ``containers.list`` does): the sandbox's
    containers remove themselves, and one removed between the list and its
    inspect would fail the caller with a 404.
    """
    client = docker.from_env()
    try:
        return list(client.api.containers(all=True, filters={"label": label}))
    finally:
        client.close()


def containers_created(ticket_id: str, since: float) -> Counter[str]:
    """The ticket's sandbox containers Docker created since a time, counted per code-run step."""
    client = docker.from_env()
    try:
        events = client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            decode=True,
            filters={
                "type": "container",
                "event": "create",
                "label": f"{SANDBOX_LABELS.ticket}={ticket_id}",
            },
        )
        return Counter(e["Actor"]["Attributes"][SANDBOX_LABELS.step] for e in events)
    finally:
        client.close()


def containers_left(ticket_id: str) -> list[str]:
    """Names of the ticket's sandbox containers that still exist."""
    found = labelled_containers(f"{SANDBOX_LABELS.ticket}={ticket_id}")
    return [name.lstrip("/") for c in found for name in c["Names"][:1]]


async def no_containers_left(ticket_id: str, within: float) -> None:
    """Wait (up to ``within`` seconds) until the ticket's containers are all removed."""
    deadline = time.monotonic() + within
    while left := containers_left(ticket_id):
        assert time.monotonic() < deadline, f"still there after {within:g} s: {left}"
        await asyncio.sleep(0.2)
