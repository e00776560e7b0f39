"""The ``support-agent`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from agent.validation import first_error
from workflows.settings import Settings


def _engine(args: argparse.Namespace, settings: Settings) -> int:
    from workflows import engine

    if args.action == "run":
        return engine.run_engine(settings)
    if args.action == "start":
        if settings.external_engine:
            print("using the external engine from HATCHET_CLIENT_TOKEN")
            return 0
        info = engine.start_engine_background(settings)
        print(f"engine running (pid {info.pid}): gRPC {info.grpc_address}, API {info.api_url}")
        return 0
    if args.action == "stop":
        stopped = engine.stop_engine(settings)
        print("engine stopped" if stopped else "no engine was running")
        return 0
    running = engine.running_engine(settings)
    if running is None:
        print("no engine running")
        return 1
    print(f"engine running (pid {running.pid}): gRPC {running.grpc_address}, API {running.api_url}")
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.engine import connect
    from workflows.worker import run_worker

    run_worker(connect(settings), settings, slots=args.slots, run_sandboxes=args.sandbox)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from cli.demo import run_demo

    return run_demo(settings)


def _sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from cli.sandbox_cmd import run_sandbox_command

    return run_sandbox_command(args, settings.sandbox)


def _evidence(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from evidence.retention import sweep
    from workflows.deps import open_evidence_store

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    store = open_evidence_store(settings)
    report = sweep(store, grace_seconds=settings.evidence.sweep_grace_seconds)
    print(f"evidence in {store.description}: {report.describe()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="support-agent",
        description="A durable, sandboxed support agent on Hatchet.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    engine = commands.add_parser("engine", help="run the embedded Hatchet engine")
    engine.add_argument(
        "action",
        choices=["start", "stop", "status", "run"],
        help="start/stop it in the background, show its status, or run it in the foreground",
    )
    engine.set_defaults(handler=_engine)

    worker = commands.add_parser("worker", help="start a worker")
    worker.add_argument("--slots", type=int, default=None, help="concurrent non-durable tasks")
    worker.add_argument(
        "--sandbox",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run code sandboxes on this worker (needs Docker); "
        "default: SUPPORT_AGENT_RUN_SANDBOXES (true)",
    )
    worker.set_defaults(handler=_worker)

    from cli.sandbox_cmd import add_sandbox_parser

    add_sandbox_parser(commands)
    commands.choices["sandbox"].set_defaults(handler=_sandbox)

    from cli.commands import add_ticket_commands

    add_ticket_commands(commands)

    from cli.dashboard_cmd import add_dashboard_parser
    from cli.serve import add_serve_parser

    add_dashboard_parser(commands)

    add_serve_parser(commands)

    evidence = commands.add_parser(
        "evidence", help="the evidence store: sweep what no ticket holds any more"
    )
    evidence.add_argument(
        "action",
        choices=["sweep"],
        help="release expired holds and delete unheld blobs (each deletion is logged)",
    )
    evidence.set_defaults(handler=_evidence)

    demo = commands.add_parser("demo", help="run two sample tickets end to end")
    demo.set_defaults(handler=_demo)
    from cli.commands import one_line_errors

    for command in commands.choices.values():  # usage errors: one line, whatever the command
        one_line_errors(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # its first problem, never the values (secrets among them)
        print(f"support-agent: error: configuration: {first_error(exc)}", file=sys.stderr)
        return 2
    try:
        code: int = args.handler(args, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for any failure, never a traceback
        from evidence.store import EvidenceError
        from sandbox import SandboxError
        from workflows.engine import EngineUnavailableError

        failures = EngineUnavailableError | SandboxError | EvidenceError | ValueError | OSError
        if not isinstance(exc, failures):
            raise
        print(f"support-agent: error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
