"""One exchange with a started container's supervisor: request in, output and report out.

Blocking; runs in a worker thread. Memory is bounded by the capture buffers
and the caps whatever the container sends, and time by a deadline of the
timeout plus the kill grace: the supervisor kills the code at the timeout and
reports, and if that report does not come the caller destroys the container.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import docker

from sandbox import supervisor
from sandbox.attach import STDERR, STDOUT, AttachConnection, DeadlineExceeded
from sandbox.capture import MarkerSplitter
from sandbox.config import SandboxConfig
from sandbox.containers import attach, oom_killed
from sandbox.errors import SandboxError
from sandbox.results import RawOutcome
from sandbox.validation import PreparedRequest
from sandbox.wire import OutputCaps, ReportParser, encode_request


@dataclass
class Conversation:
    outcome: RawOutcome
    # True when the supervisor reported: it exits right after, and Docker's
    # auto-remove destroys the container; otherwise the caller must.
    finished: bool


def converse(
    client: docker.DockerClient, config: SandboxConfig, container: str, prepared: PreparedRequest
) -> Conversation:
    raw = RawOutcome.empty(config)
    nonce = secrets.token_hex(16).encode()
    marker = supervisor.marker(nonce)
    out_split, err_split = MarkerSplitter(marker), MarkerSplitter(marker)
    report = ReportParser(raw.files)
    caps = OutputCaps(
        config.max_output_files, config.max_output_file_bytes, config.max_output_total_bytes
    )
    connection = AttachConnection(attach(client, config, container))
    started = time.monotonic()
    deadline = started + prepared.timeout + config.kill_grace_seconds
    deadline_passed = False
    try:
        request = encode_request(nonce, prepared.language, prepared.timeout, prepared.code, caps)
        connection.send(request, deadline)
        for stream, piece in connection.frames(deadline):
            if stream == STDOUT:
                before, after = out_split.feed(piece)
                raw.stdout.add(before)
                if after:
                    report.feed(after)
            elif stream == STDERR:
                raw.stderr.add(err_split.feed(piece)[0])
            if (report.done and err_split.found) or report.error:
                break
    except DeadlineExceeded:
        deadline_passed = True
    finally:
        connection.close()
    raw.duration_seconds = time.monotonic() - started
    raw.stdout.add(out_split.flush())
    raw.stderr.add(err_split.flush())

    if report.done:
        raw.exit_code = report.exit_code
        raw.timed_out = report.timed_out
        raw.oom_killed = report.oom_kills > 0
        raw.kernel = report.kernel
        if report.duration_seconds is not None:
            raw.duration_seconds = report.duration_seconds
        if raw.timed_out:
            raw.notes.append(
                f"the code was killed at its {prepared.timeout:g}s timeout;"
                " output and files written until then are kept"
            )
        if raw.oom_killed:
            raw.notes.append(f"a process hit the {config.memory_mb} MB memory limit and was killed")
        return Conversation(raw, finished=True)
    if deadline_passed:
        raw.timed_out = True
        raw.notes.append(
            f"no report {prepared.timeout + config.kill_grace_seconds:.0f}s after the start;"
            " the container was destroyed"
        )
        return Conversation(raw, finished=False)
    if report.error:
        raw.notes.append(f"the sandbox's report was unusable ({report.error})")
        return Conversation(raw, finished=False)
    # The stream ended without a report: the container died under us.
    if oom_killed(client, container):
        # The OOM killer took the supervisor (under gVisor: the sandbox's
        # kernel) and so every process: the code died of SIGKILL too.
        raw.oom_killed = True
        raw.exit_code = 128 + 9
        raw.notes.append(
            "the container ran out of memory before it could report: the output until"
            " then is kept, the output files are lost"
        )
        return Conversation(raw, finished=False)
    raise SandboxError(
        "the sandbox container stopped before reporting (removed by a retry of the same"
        " step, by the reaper, or killed)"
    )
