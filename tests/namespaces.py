"""Hatchet namespaces for tests and benchmarks, removed from the engine when they end.

A namespace leaves its workflows behind, and the engine keeps working for
them: every concurrency strategy of a workflow is polled until the workflow
is deleted, every queue for a day after its last task. Measured on 2 cores:
750 workflows left by earlier test sessions kept an idle engine and its
PostgreSQL at 35% CPU and cut parking from 3.8 to 1.5 tickets/s. So each
session deletes what it registered (``delete_namespaces``, from the e2e
conftest and each benchmark); our engine build then stops polling the
deleted workflows' idle queues too (tests/e2e/test_engine_queues.py).
"""

from __future__ import annotations

import atexit
import uuid

from workflows.engine import connect
from workflows.settings import Settings

_created: list[str] = []


def remember(namespace: str) -> str:
    """Record a namespace for ``delete_namespaces``; returns it."""
    if namespace not in _created:
        _created.append(namespace)
    return namespace


def new_namespace(prefix: str) -> str:
    """A fresh namespace, recorded so that ``delete_namespaces`` removes it.

    A benchmark run on its own (``python -m benchmarks.bench_park``) deletes
    its namespaces when the process exits; ``make bench`` does it after all.
    """
    if not _created:
        atexit.register(_delete_at_exit)
    return remember(f"{prefix}{uuid.uuid4().hex[:10]}")


def _delete_at_exit() -> None:
    if not _created:
        return
    try:
        delete_namespaces()
    except Exception as exc:  # the engine went away: nothing to keep busy
        print(f"could not delete the namespaces {_created}: {exc}")


def delete_namespace(settings: Settings, namespace: str) -> int:
    """Delete every workflow registered under ``namespace``; returns how many.

    The name filter matches substrings, so each name is checked for the exact
    prefix: another namespace that merely contains this one is left alone.
    Synchronous on purpose: it also runs at interpreter exit, when no thread
    pool (the SDK's async calls use one) takes new work.
    """
    hatchet = connect(settings, namespace=namespace)
    prefix = hatchet.namespace  # as the SDK normalises it (lower case, "_" appended)
    listed = hatchet.workflows.list(workflow_name=prefix, limit=1000)
    doomed = [w for w in listed.rows or [] if w.name.startswith(prefix)]
    for workflow in doomed:
        hatchet.workflows.delete(workflow.metadata.id)
    return len(doomed)


def delete_namespaces(settings: Settings | None = None) -> int:
    """Delete the workflows of every namespace recorded so far."""
    settings = settings or Settings()
    deleted = 0
    while _created:
        deleted += delete_namespace(settings, _created[0])
        _created.pop(0)
    return deleted
