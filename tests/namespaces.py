"""Hatchet namespaces for tests and benchmarks, removed from the engine when they end.

A namespace leaves its workflows and its unfinished runs behind, and the
engine keeps working for them: every concurrency strategy of a workflow is
polled until the workflow is deleted, every queue for a day after its last
task, and a queued run (a ticket submitted with no worker to take it) until
its schedule timeout (49 hours for a ticket by default). Measured on 2 cores:
750 workflows left by earlier test sessions kept an idle engine and its
PostgreSQL at 35% CPU and cut parking from 3.8 to 1.5 tickets/s; 1,567 runs
left queued by earlier benchmark runs (the HTTP intake benchmark's 200
tickets each time) kept them at 27% of a core idle (15% without) and made
each code step cost 211-273 ms of machine CPU in orchestration instead of
137 ms. So each
session cancels the runs it left unfinished and deletes what it registered
(``delete_namespaces``, from the e2e conftest and after each benchmark); our
engine build then stops polling the deleted workflows' idle queues too
(tests/e2e/test_engine_queues.py).
"""

from __future__ import annotations

import atexit
import time
import uuid
from datetime import UTC, datetime, timedelta

from hatchet_sdk import Hatchet
from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
from hatchet_sdk.clients.rest.models.workflow import Workflow
from hatchet_sdk.features.runs import BulkCancelReplayOpts

from workflows.engine import connect
from workflows.settings import Settings

# Namespace -> when it was recorded, less a margin for clocks: its runs are younger.
_created: dict[str, datetime] = {}
_exit_registered = False


def remember(namespace: str) -> str:
    """Record a namespace for ``delete_namespaces``; returns it."""
    _created.setdefault(namespace, datetime.now(UTC) - timedelta(hours=1))
    return namespace


def new_namespace(prefix: str) -> str:
    """A fresh namespace, recorded so that ``delete_namespaces`` removes it.

    A benchmark run on its own (``python -m benchmarks.bench_park``) deletes
    its namespaces when the process exits; ``make bench`` after each benchmark.
    """
    global _exit_registered
    if not _exit_registered:
        atexit.register(_delete_at_exit)
        _exit_registered = True
    return remember(f"{prefix}{uuid.uuid4().hex[:10]}")


def _delete_at_exit() -> None:
    if not _created:
        return
    try:
        delete_namespaces()
    except Exception as exc:  # the engine went away: nothing to keep busy
        print(f"could not delete the namespaces {list(_created)}: {exc}")


def _workflows(hatchet: Hatchet) -> list[Workflow]:
    """The namespace's workflows. The name filter matches substrings, so each
    name is checked for the exact prefix: another namespace that merely
    contains this one is left alone."""
    prefix = hatchet.namespace  # as the SDK normalises it (lower case, "_" appended)
    listed = hatchet.workflows.list(workflow_name=prefix, limit=1000)
    return [w for w in listed.rows or [] if w.name.startswith(prefix)]


def delete_namespace(settings: Settings, namespace: str) -> int:
    """Delete every workflow registered under ``namespace``; returns how many.

    Its runs are left as they are (a queued one keeps its queue polled, so it
    is not stranded). Synchronous on purpose: it also runs at interpreter
    exit, when no thread pool (the SDK's async calls use one) takes new work.
    """
    hatchet = connect(settings, namespace=namespace)
    doomed = _workflows(hatchet)
    for workflow in doomed:
        hatchet.workflows.delete(workflow.metadata.id)
    return len(doomed)


def cancel_unfinished_runs(
    settings: Settings, namespace: str, since: datetime, within: float = 20
) -> bool:
    """Cancel the namespace's unfinished runs created after ``since``; True once none is left.

    By id, as the run list shows them: its "running" includes the runs the
    engine evicted (a ticket parked for its customer's reply, once its
    worker stopped), which a cancel by status filter leaves alone. The
    engine cancels in the background and its list lags by about a second,
    so this looks again until the list is empty or ``within`` seconds pass.
    Deleting the workflows only then lets their emptied queues leave the
    polling at once.
    """
    hatchet = connect(settings, namespace=namespace)
    ids = [w.metadata.id for w in _workflows(hatchet)]
    if not ids:
        return True
    unfinished = [V1TaskStatus.QUEUED, V1TaskStatus.RUNNING]
    asked: set[str] = set()
    deadline = time.monotonic() + within
    while True:
        left = hatchet.runs.list(
            since=since, statuses=unfinished, workflow_ids=ids, limit=500, include_payloads=False
        )
        runs = {run.metadata.id for run in left.rows}
        if not runs:
            return True
        if time.monotonic() > deadline:
            return False
        if runs - asked:
            hatchet.runs.bulk_cancel(BulkCancelReplayOpts(ids=sorted(runs - asked)))
            asked |= runs
        time.sleep(0.5)


def delete_namespaces(settings: Settings | None = None) -> int:
    """Cancel what every namespace recorded so far left unfinished, and delete its workflows."""
    settings = settings or Settings()
    deleted = 0
    while _created:
        namespace, since = next(iter(_created.items()))
        if not cancel_unfinished_runs(settings, namespace, since):
            print(f"runs of namespace {namespace} were still unfinished after 20 s")
        deleted += delete_namespace(settings, namespace)
        del _created[namespace]
    return deleted
