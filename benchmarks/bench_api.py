"""Ticket intake over HTTP: many helpdesk deliveries at once, none lost.

``API_BENCH_TICKETS`` (default 200) tickets, each with a small attachment,
are POSTed concurrently (``API_BENCH_CONCURRENCY``, default 50 connections)
to a real ``support-agent serve`` with the real engine behind it, signed as a
helpdesk signs them. Baseline, in the same run: a bare endpoint of the same
framework and server (FastAPI on uvicorn) that parses the same multipart
form and answers 202. Afterwards every ticket must have exactly one run in the engine.
No worker serves the namespace, so what is measured is intake alone.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx2

from tests.e2e.api_server import API_SECRET, free_port
from tests.namespaces import new_namespace
from tests.webhooks import multipart, signed_headers
from workflows.engine import connect
from workflows.settings import Settings
from workflows.transcript import ticket_runs

ATTACHMENT = b"2026-11-20T10:00:01Z ERROR db: pool exhausted\n" * 40


def bare_app() -> Any:
    """The same framework and form handling, nothing behind it: reads the fields and file."""
    from typing import Annotated

    from fastapi import FastAPI, File, Form, UploadFile

    app = FastAPI()

    @app.post("/v1/tickets", status_code=202)
    async def accept(
        ticket_id: Annotated[str, Form()],
        customer_email: Annotated[str, Form()],
        subject: Annotated[str, Form()],
        body: Annotated[str, Form()],
        attachments: Annotated[list[UploadFile], File()],
    ) -> dict[str, str]:
        for upload in attachments:
            await upload.read()
        return {"ticket_id": ticket_id}

    return app


def _serve(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return process
        except httpx2.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{args} did not start")


async def post_all(url: str, tickets: int, concurrency: int) -> tuple[list[float], list[str]]:
    limits = httpx2.Limits(max_connections=concurrency)
    latencies: list[float] = []
    accepted: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    prefix = uuid.uuid4().hex[:6]

    async def one(client: httpx2.AsyncClient, n: int) -> None:
        ticket_id = f"BENCH-{prefix}-{n}"
        body, content_type = multipart(
            {
                "ticket_id": ticket_id,
                "customer_email": f"c{n % 20}@example.com",
                "subject": "Export fails",
                "body": "Every export fails since 09:41.",
            },
            [("api.log", ATTACHMENT)],
        )
        async with gate:
            started = time.perf_counter()
            headers = {**signed_headers(API_SECRET, body), "content-type": content_type}
            response = await client.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
        if response.status_code == 202:
            accepted.append(ticket_id)

    async with httpx2.AsyncClient(limits=limits, timeout=120) as client:
        await asyncio.gather(*(one(client, n) for n in range(tickets)))
    return latencies, accepted


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def count_runs(namespace: str, ticket_ids: list[str]) -> int:
    hatchet = connect(Settings(), namespace=namespace)
    runs = await ticket_runs(hatchet, limit=len(ticket_ids) + 50)
    found = {r.input.get("ticket", {}).get("ticket_id") for r in runs}
    return len(found & set(ticket_ids))


def main() -> None:
    tickets = int(os.environ.get("API_BENCH_TICKETS", "200"))
    concurrency = int(os.environ.get("API_BENCH_CONCURRENCY", "50"))
    namespace = new_namespace("apibench")
    api_port, bare_port = free_port(), free_port()
    api = _serve(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(api_port)],
        {"HATCHET_CLIENT_NAMESPACE": namespace, "SUPPORT_AGENT_API_SECRET": API_SECRET},
        api_port,
    )
    bare = _serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "benchmarks.bench_api:bare_app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
        ],
        {},
        bare_port,
    )
    try:
        bare_latency, _ = asyncio.run(
            post_all(f"http://127.0.0.1:{bare_port}/v1/tickets", tickets, concurrency)
        )
        started = time.perf_counter()
        api_latency, accepted = asyncio.run(
            post_all(f"http://127.0.0.1:{api_port}/v1/tickets", tickets, concurrency)
        )
        elapsed = time.perf_counter() - started
        time.sleep(2)  # the engine's run list lags a trigger by a moment
        in_engine = asyncio.run(count_runs(namespace, accepted))
    finally:
        for process in (api, bare):
            process.terminate()
            process.wait(timeout=30)
    p50, p95 = percentile(api_latency, 50), percentile(api_latency, 95)
    b50, b95 = percentile(bare_latency, 50), percentile(bare_latency, 95)
    print(f"HTTP intake ({tickets} signed tickets with an attachment, {concurrency} at once)")
    print(f"  accepted (202)                 {len(accepted):6d} of {tickets}")
    print(f"  runs in the engine             {in_engine:6d} (lost: {tickets - in_engine})")
    print(f"  intake latency p50 / p95       {p50 * 1000:8.1f} / {p95 * 1000:8.1f} ms")
    print(f"  bare FastAPI form p50 / p95    {b50 * 1000:8.1f} / {b95 * 1000:8.1f} ms")
    print(f"  ratio p50 / p95                {p50 / b50:8.1f}x / {p95 / b95:.1f}x")
    print(f"  throughput                     {len(accepted) / elapsed:8.1f} tickets/s")


if __name__ == "__main__":
    main()
