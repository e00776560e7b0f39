"""Hatchet namespaces for tests and benchmarks, removed from the engine when they end.

A namespace leaves its workflows behind, and the engine keeps working for
them: every concurrency strategy of a workflow is polled until the workflow
is deleted, every queue for a day after its last task. Measured on 2 cores:
750 workflows left by earlier test sessions kept an idle engine and its
PostgreSQL at 35% CPU and cut parking from 3.8 to 1.5 tickets/s. So each
session deletes what it registered (``delete_namespaces``, from the e2e
conftest and each benchmark).
"""

from __future__ import annotations

import asyncio
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
    """A fresh namespace, recorded so that ``delete_namespaces`` removes it."""
    return remember(f"{prefix}{uuid.uuid4().hex[:10]}")


async def delete_namespace(settings: Settings, namespace: str) -> int:
    """Delete every workflow registered under ``namespace``; returns how many.

    The name filter matches substrings, so each name is checked for the exact
    prefix: another namespace that merely contains this one is left alone.
    """
    hatchet = connect(settings, namespace=namespace)
    prefix = hatchet._client.config.apply_namespace("")
    listed = await hatchet.workflows.aio_list(workflow_name=prefix, limit=1000)
    doomed = [w for w in listed.rows or [] if w.name.startswith(prefix)]
    for workflow in doomed:
        await hatchet.workflows.aio_delete(workflow.metadata.id)
    return len(doomed)


def delete_namespaces(settings: Settings | None = None) -> int:
    """Delete the workflows of every namespace made by ``new_namespace`` so far."""
    settings = settings or Settings()
    namespaces, _created[:] = list(_created), []

    async def delete_all() -> int:
        counts = [await delete_namespace(settings, ns) for ns in namespaces]
        return sum(counts)

    return asyncio.run(delete_all())
