"""``support-agent sandbox run FILE``: run a file exactly as the agent's code would run.

For people: to try a diagnostic script, reproduce what the agent saw, or
check that the sandbox works on this machine. Exit status 0 means the sandbox
ran the file, whatever the file's own exit code (that is in the output);
non-zero means the sandbox could not run it, with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from sandbox import (
    DockerSandbox,
    ExecutionRequest,
    ExecutionResult,
    InputFile,
    InvalidInputError,
    SandboxConfig,
    SandboxError,
)
from sandbox.models import Language

EXIT_SANDBOX_FAILED = 1
EXIT_BAD_INPUT = 2


def add_sandbox_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``sandbox run`` to the ``support-agent`` command line."""
    sandbox = subparsers.add_parser("sandbox", help="run code in the sandbox by hand")
    actions = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    run = actions.add_parser(
        "run",
        help="run a file in a fresh sandbox container and print the result",
        description=(
            "Run FILE in a fresh locked-down container, exactly as the agent's code runs,"
            " and print the result. Exits 0 whenever the sandbox ran it."
        ),
    )
    run.add_argument("file", type=Path, metavar="FILE", help="the Python or bash script")
    run.add_argument(
        "--language",
        choices=["python", "bash"],
        help="default: bash for .sh files, python otherwise",
    )
    run.add_argument(
        "--attach",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a file to place read-only in /work/input (repeatable)",
    )
    run.add_argument("--timeout", type=float, metavar="S", help="wall-clock timeout in seconds")
    run.add_argument("--json", action="store_true", help="print the result as JSON")


def run_sandbox_command(args: argparse.Namespace, config: SandboxConfig) -> int:
    """Handle ``sandbox run``; returns the process exit status."""
    try:
        request = _request(args)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read an input file: {exc}", EXIT_BAD_INPUT)
    try:
        result = asyncio.run(_run(config, request))
    except InvalidInputError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except SandboxError as exc:
        return _fail(str(exc), EXIT_SANDBOX_FAILED)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print(render(result))
    return 0


def _request(args: argparse.Namespace) -> ExecutionRequest:
    path: Path = args.file
    code = path.read_text(encoding="utf-8")
    language: Language = args.language or ("bash" if path.suffix == ".sh" else "python")
    files = [InputFile.from_path(p.name, p) for p in args.attach]
    return ExecutionRequest(
        code=code,
        language=language,
        files=files,
        timeout_seconds=args.timeout,
        ticket_id="cli",
        run_id=uuid.uuid4().hex[:12],
        step_id="run",
    )


async def _run(config: SandboxConfig, request: ExecutionRequest) -> ExecutionResult:
    # No start(): a one-off run needs neither a warm pool nor the reaper.
    sandbox = DockerSandbox(config)
    try:
        return await sandbox.run(request)
    finally:
        await sandbox.close()


def render(result: ExecutionResult) -> str:
    """A readable summary: status line, notes, both streams in full, file list."""
    lines = [
        f"exit code: {result.exit_code}   duration: {result.duration_seconds:.2f}s"
        f"   flags: {', '.join(result.flags()) or 'none'}   container: {result.container_name}"
        f"   runtime: {result.runtime} (kernel {result.kernel})",
    ]
    lines += [f"note: {note}" for note in result.notes]
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        lines.append(f"--- {name} ---")
        lines.append(text.rstrip("\n") if text else "(empty)")
    lines.append(f"--- output files ({len(result.output_files)}) ---")
    lines += [item.describe() for item in result.output_files]
    if result.output_files_omitted:
        lines.append(f"({result.output_files_omitted} more not kept)")
    return "\n".join(lines)


def _fail(message: str, status: int) -> int:
    print(f"support-agent sandbox: {message}", file=sys.stderr)
    return status
