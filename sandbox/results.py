"""Turning captured bytes into an ``ExecutionResult``: one place, for real and fake sandboxes.

FakeSandbox feeds its scripted bytes through the same capture and caps as the
Docker sandbox, so a caller tested against the fake sees exactly the shapes
(truncation notes, replacement characters, omitted files) it will see for real.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from sandbox.capture import (
    FileCollector,
    HeadTailBuffer,
    RawFile,
    decode_capped,
    without_partial_end,
)
from sandbox.config import SandboxConfig
from sandbox.models import ExecutionResult, OutputFile


@dataclass
class RawOutcome:
    """What one execution produced, before decoding: bounded by construction."""

    stdout: HeadTailBuffer
    stderr: HeadTailBuffer
    files: FileCollector
    exit_code: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    duration_seconds: float = 0.0
    kernel: str = ""
    notes: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, config: SandboxConfig) -> RawOutcome:
        return cls(
            stdout=HeadTailBuffer(config.stdout_limit_bytes),
            stderr=HeadTailBuffer(config.stderr_limit_bytes),
            files=FileCollector(
                config.max_output_files,
                config.max_output_file_bytes,
                config.max_output_total_bytes,
            ),
        )


def build_result(
    raw: RawOutcome, *, container_name: str, from_pool: bool, runtime: str
) -> ExecutionResult:
    stdout = decode_capped(raw.stdout, "stdout")
    stderr = decode_capped(raw.stderr, "stderr")
    notes = list(raw.notes)
    for name, stream in (("stdout", stdout), ("stderr", stderr)):
        if stream.dropped_bytes:
            notes.append(
                f"{name} was {stream.dropped_bytes} bytes over the limit; its middle was dropped"
            )
        if stream.invalid_utf8:
            notes.append(f"{name} was not valid UTF-8; invalid bytes were replaced with U+FFFD")
    files = [_output_file(f, notes) for f in raw.files.files]
    if raw.files.omitted:
        notes.append(
            f"{raw.files.omitted} output entries were not kept (over the cap of"
            f" {raw.files.max_files} files, or not regular files)"
        )
    return ExecutionResult(
        exit_code=None if raw.timed_out else raw.exit_code,
        stdout=stdout.text,
        stderr=stderr.text,
        stdout_truncated_bytes=stdout.dropped_bytes,
        stderr_truncated_bytes=stderr.dropped_bytes,
        stdout_invalid_utf8=stdout.invalid_utf8,
        stderr_invalid_utf8=stderr.invalid_utf8,
        duration_seconds=round(raw.duration_seconds, 3),
        timed_out=raw.timed_out,
        oom_killed=raw.oom_killed,
        output_files=files,
        output_files_omitted=raw.files.omitted,
        container_name=container_name,
        from_pool=from_pool,
        runtime=runtime,
        kernel=raw.kernel,
        notes=notes,
    )


def _output_file(raw: RawFile, notes: list[str]) -> OutputFile:
    try:
        name = raw.name.decode("utf-8")
    except UnicodeDecodeError:
        name = raw.name.decode("utf-8", errors="replace")
        notes.append(f"output file name {name!r} was not valid UTF-8; invalid bytes replaced")
    truncated = len(raw.data) < raw.size
    # A cut can split the last character of a text file; that alone must not
    # turn it into "binary".
    data = without_partial_end(raw.data) if truncated else raw.data
    try:
        return OutputFile(name=name, size=raw.size, truncated=truncated, text=data.decode("utf-8"))
    except UnicodeDecodeError:
        encoded = base64.b64encode(raw.data).decode("ascii")
        return OutputFile(name=name, size=raw.size, truncated=truncated, base64=encoded)
