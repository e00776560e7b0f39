"""Real-size evidence: a 100 MB log through ``submit --attach`` to the first script's output.

Measured in one run, on the real engine, worker and sandbox (the model is
the fake Messages API answering instantly, so the figures are the
evidence path's own):

* submit -> first output   wall time from starting ``support-agent submit``
                           until the first script's output is recorded: the
                           CLI streams the file into the evidence store, the
                           run starts, the worker streams it from the store
                           into a fresh container, the script reads it whole;
* CLI peak RSS growth      the CLI's peak RSS with the 100 MB log, less its
                           peak RSS submitting a 1 KB file;
* worker peak RSS growth   the worker's peak RSS while handling the ticket
                           (VmHWM reset first), less its RSS before;
* floor                    a plain copy of the same file into a container
                           (Docker's put_archive, streamed), in the same run.

Target: both RSS growths under 64 MB, whatever the file size.
Size: EVIDENCE_BENCH_MB (default 100).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agent.tools import REPLY, RUN_CODE
from benchmarks.workers import FAKE_MODEL_ENV, support_worker
from tests.fake_anthropic import FakeAnthropic, FakeResponse, message, tool_use
from tests.namespaces import new_namespace
from workflows.engine import connect
from workflows.settings import Settings
from workflows.transcript import fetch_transcript, resolve_run_id

RSS_TARGET_MB = 64
SCRIPT = "import sys\nn = sum(1 for _ in open('/work/input/app.log', 'rb'))\nprint('lines', n)\n"


def responder(body: dict[str, Any]) -> FakeResponse:
    """Instant 'Claude': one script that reads the whole log, then a closing reply."""
    if sum(1 for m in body["messages"] if m["role"] == "assistant") == 0:
        return message(tool_use(RUN_CODE, {"language": "python", "code": SCRIPT, "purpose": "n"}))
    return message(tool_use(REPLY, {"message": "Done.", "resolved": True}))


def write_log(path: Path, megabytes: int) -> None:
    line = b"2026-11-20T09:00:00Z INFO GET /api/orders 200 12ms user=u1 region=eu-west-1\n"
    block = line * (1024 * 1024 // len(line))
    with path.open("wb") as out:
        for _ in range(megabytes):
            out.write(block)


def _kb(pid: int, field: str) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field + ":"):
            return int(row.split()[1])
    return 0


def submit(namespace: str, env: dict[str, str], attachment: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS in KB, ticket id) of one ``support-agent submit``."""
    ticket_id = f"EV-{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "submit",
            "bench@example.com",
            "Evidence bench",
            "--body",
            "Log attached.",
            "--attach",
            str(attachment),
            "--ticket-id",
            ticket_id,
            "--reply-timeout",
            "600",
        ],
        env={**os.environ, **env, "HATCHET_CLIENT_NAMESPACE": namespace},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(
            f"submit failed: {process.stderr.read().decode() if process.stderr else ''}"
        )
    return time.perf_counter() - started, int(usage.ru_maxrss), ticket_id


async def first_output(namespace: str, ticket_id: str, within: float = 600) -> float:
    hatchet = connect(Settings(), namespace=namespace)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            transcript = await fetch_transcript(hatchet, await resolve_run_id(hatchet, ticket_id))
            done = [s for s in transcript.scripts if s.stdout or s.error]
            if done:
                if done[0].error or "lines" not in done[0].stdout:
                    raise RuntimeError(f"the script failed: {done[0].error or done[0].stderr}")
                return time.perf_counter()
        except RuntimeError:
            raise
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no script output for {ticket_id} within {within} s")


def plain_copy(path: Path, image: str) -> float:
    """The floor: stream the same file into a fresh container with put_archive."""
    import docker

    client = docker.from_env(timeout=300)
    container = client.containers.create(image, command=["true"], network_mode="none")
    try:

        def stream() -> Any:
            info = tarfile.TarInfo("app.log")
            info.size = path.stat().st_size
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            with path.open("rb") as handle:
                while chunk := handle.read(1024 * 1024):
                    yield chunk
            yield b"\0" * (-info.size % 512) + b"\0" * 1024

        started = time.perf_counter()
        client.api.put_archive(container.id, "/tmp", stream())
        return time.perf_counter() - started
    finally:
        container.remove(force=True)


def main() -> None:
    megabytes = int(os.environ.get("EVIDENCE_BENCH_MB", "100"))
    namespace = new_namespace("ev")
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="evidence-bench-") as folder, FakeAnthropic() as fake:
        fake.responder = responder
        big, small = Path(folder) / "app.log", Path(folder) / "small" / "app.log"
        write_log(big, megabytes)
        small.parent.mkdir()
        small.write_bytes(b"2026-11-20T09:00:00Z INFO ok\n" * 35)
        env = {**fake.env(), **FAKE_MODEL_ENV}
        with support_worker(namespace, env) as worker:
            # Warm-up and the CLI's baseline: the same path with a 1 KB file.
            _, _, warm = submit(namespace, env, small)
            asyncio.run(first_output(namespace, warm))
            small_upload, small_rss, again = submit(namespace, env, small)
            asyncio.run(first_output(namespace, again))
            time.sleep(1)
            rss_before = _kb(worker.pid, "VmRSS")
            Path(f"/proc/{worker.pid}/clear_refs").write_text("5")  # reset VmHWM
            started = time.perf_counter()
            upload, big_rss, ticket = submit(namespace, env, big)
            seen = asyncio.run(first_output(namespace, ticket))
            wall = seen - started
            worker_peak = _kb(worker.pid, "VmHWM")
        floor = plain_copy(big, settings.sandbox.image)
    cli_growth = (big_rss - small_rss) / 1024
    worker_growth = (worker_peak - rss_before) / 1024
    ok = max(cli_growth, worker_growth) < RSS_TARGET_MB
    big_mb, small_mb, peak_mb = big_rss / 1024, small_rss / 1024, worker_peak / 1024
    print(f"evidence benchmark: a {megabytes} MB log, submit -> first script's output")
    print(f"  submit -> first script output       {wall:8.2f} s")
    print(
        f"    of which the CLI's submit          {upload:8.2f} s "
        f"({small_upload:.2f} s with a 1 KB file: start-up and the engine)"
    )
    print(f"  plain copy into a container (floor) {floor:8.2f} s (put_archive, same file)")
    print(
        f"  CLI peak RSS growth                 {cli_growth:8.1f} MB "
        f"(peak {big_mb:.0f} MB; {small_mb:.0f} MB with a 1 KB file)"
    )
    print(f"  worker peak RSS growth              {worker_growth:8.1f} MB (peak {peak_mb:.0f} MB)")
    print(f"  target: RSS growth under {RSS_TARGET_MB} MB: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
