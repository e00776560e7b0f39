"""Deleting a workflow takes its queues out of the engine's polling.

The engine polls every queue that was active within the last day. Test
sessions and benchmarks each register and delete dozens of workflows: before
setup/hatchet/patches/hatchet-v0.105.0-retire-deleted-queues.patch, an engine
kept polling thousands of dead queues (22% of a core, idle, on 2 cores).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hatchet_sdk import Context, DurableContext, EmptyModel

from tests.conftest import eventually
from tests.helpers import engine_sql, stop_process
from tests.namespaces import cancel_unfinished_runs, delete_namespace, new_namespace
from workflows.engine import EngineInfo, connect
from workflows.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def queues(settings: Settings, prefix: str) -> dict[str, tuple[bool, int]]:
    """Each queue of the namespace: (polled by the schedulers, items waiting in it)."""
    rows = engine_sql(
        settings,
        "select q.name, q.last_active > now() - interval '1 day',"
        " (select count(*) from v1_queue_item i where i.tenant_id = q.tenant_id"
        " and i.queue = q.name)"
        f" from v1_queue q where starts_with(q.name, '{prefix}')",
    )
    return {name.removeprefix(prefix): (active == "t", int(items)) for name, active, items in rows}


async def test_a_deleted_workflows_idle_queues_are_no_longer_polled(
    engine: EngineInfo | None, settings: Settings
) -> None:
    if settings.external_engine:
        pytest.skip("an external engine's database is its operator's")
    namespace = new_namespace("queues")  # its own: its workflows are deleted mid-test
    hatchet = connect(settings, namespace=namespace)
    prefix = hatchet.namespace  # the SDK's normalised form: lower case, "_" appended

    @hatchet.task(name="finished")
    async def finished(_: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {}

    @hatchet.task(name="waiting")
    async def waiting(_: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {}

    for task in (finished, waiting):
        await hatchet._client.admin.aio_put_workflow(task.to_proto())

    def waiting_in(expected: dict[str, tuple[bool, int]]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return queues(settings, prefix) == expected

        return check

    # No worker: each run stays in its task's queue until it is cancelled.
    done = await finished.aio_run(wait_for_result=False)
    pending = await waiting.aio_run(wait_for_result=False)
    try:
        # A run is queued a moment after its trigger is accepted; cancelling
        # before that would find nothing to cancel.
        both = {"finished:finished": (True, 1), "waiting:waiting": (True, 1)}
        await eventually(waiting_in(both), within=60, what="a queue per task, a run in each")
        await hatchet.runs.aio_cancel(done.workflow_run_id)
        one = {"finished:finished": (True, 0), "waiting:waiting": (True, 1)}
        await eventually(waiting_in(one), within=60, what="the cancelled run leaving its queue")

        assert delete_namespace(settings, namespace) == 2
        after = queues(settings, prefix)
        # The emptied queue leaves the polling at once; the one whose run still
        # waits stays, so that run is not stranded.
        assert after == {"finished:finished": (False, 0), "waiting:waiting": (True, 1)}, after
    finally:
        await hatchet.runs.aio_cancel(pending.workflow_run_id)


async def test_a_sessions_cleanup_cancels_its_queued_runs_then_retires_their_queues(
    engine: EngineInfo | None, settings: Settings
) -> None:
    """What tests and benchmarks leave queued (no worker took it) stops costing the engine.

    A queued run keeps its queue polled until its schedule timeout (49 hours
    for a ticket): the cleanup cancels a session's unfinished runs first,
    so deleting the workflows retires the emptied queues at once.
    """
    if settings.external_engine:
        pytest.skip("an external engine's database is its operator's")
    since = datetime.now(UTC) - timedelta(minutes=5)
    namespace = new_namespace("leftover")
    hatchet = connect(settings, namespace=namespace)
    prefix = hatchet.namespace

    @hatchet.task(name="left")
    async def left(_: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {}

    await hatchet._client.admin.aio_put_workflow(left.to_proto())
    for _ in range(3):
        await left.aio_run(wait_for_result=False)

    async def three_queued() -> bool:
        return queues(settings, prefix) == {"left:left": (True, 3)}

    await eventually(three_queued, within=60, what="three runs queued with no worker")
    assert await asyncio.to_thread(cancel_unfinished_runs, settings, namespace, since)
    assert queues(settings, prefix) == {"left:left": (True, 0)}
    assert delete_namespace(settings, namespace) == 1
    assert queues(settings, prefix) == {"left:left": (False, 0)}


# A worker whose one durable task parks for an hour, as a ticket waits for its customer.
PARKED_WORKER = """
from datetime import timedelta
from hatchet_sdk import DurableContext, EmptyModel
from hatchet_sdk.runnables.eviction import EvictionPolicy
from workflows.engine import connect
from workflows.settings import Settings

hatchet = connect(Settings())

@hatchet.durable_task(
    name="parked",
    execution_timeout=timedelta(hours=2),
    eviction_policy=EvictionPolicy(ttl=timedelta(hours=1)),
)
async def parked(_: EmptyModel, ctx: DurableContext) -> dict[str, str]:
    await ctx.aio_sleep_for(timedelta(hours=1))
    return {}

hatchet.worker("parked", slots=2, durable_slots=2, workflows=[parked]).start()
"""


def start_parked_worker(namespace: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", PARKED_WORKER],
        env={**os.environ, "HATCHET_CLIENT_NAMESPACE": namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_sessions_cleanup_cancels_the_runs_its_stopped_workers_left_parked(
    engine: EngineInfo | None, settings: Settings
) -> None:
    """A durable run waiting when its worker stops is evicted, not cancelled: the cleanup gets it.

    The engine keeps an evicted run (a ticket parked for its customer's
    reply) to restore it later; a cancel by status filter leaves it alone,
    so the cleanup cancels the runs the run list shows, by id.
    """
    if settings.external_engine:
        pytest.skip("an external engine's database is its operator's")
    since = datetime.now(UTC) - timedelta(minutes=5)
    namespace = new_namespace("parked")
    hatchet = connect(settings, namespace=namespace)

    @hatchet.durable_task(name="parked")
    async def parked(_: EmptyModel, ctx: DurableContext) -> dict[str, str]:
        return {}  # never runs here: triggered by name, run by the worker below

    worker = start_parked_worker(namespace)
    try:
        await hatchet._client.admin.aio_put_workflow(parked.to_proto())
        ref = await parked.aio_run(wait_for_result=False)

        def status_is(wanted: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                query = (
                    "select readable_status from v1_runs_olap"
                    f" where external_id = '{ref.workflow_run_id}'"
                )
                return engine_sql(settings, query) == [[wanted]]

            return check

        await eventually(status_is("RUNNING"), within=60, what="the run parked on its worker")
    finally:
        stop_process(worker)  # a graceful stop: the engine evicts the waiting run
    await eventually(status_is("EVICTED"), within=60, what="the run evicted with its worker")
    assert await asyncio.to_thread(cancel_unfinished_runs, settings, namespace, since)
    await eventually(status_is("CANCELLED"), within=30, what="the evicted run cancelled")
    assert delete_namespace(settings, namespace) == 1
