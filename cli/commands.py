"""``support-agent submit | reply | watch | show | tickets``: the ticket commands.

Every command checks its input completely before it connects, and checks
that the engine answers before it changes anything, so a bad input or an
unreachable engine leaves nothing half-done. Failures are one line on
stderr; exit status 0 means success, 1 a failure (engine, run, ticket),
2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import warnings
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from agent.tickets import TICKET_ID_PATTERN, CustomerReply, Ticket, new_ticket_id
from agent.validation import first_error
from evidence.ingest import EvidenceRefusedError, IngestResult, Upload, check_uploads
from evidence.limits import EvidenceLimits
from evidence.store import EvidenceError, StoreUnavailableError
from workflows.settings import Settings

if TYPE_CHECKING:
    from hatchet_sdk import Hatchet

    from cli.render import Terminal
    from workflows.transcript import Transcript

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
ENGINE_CHECK_SECONDS = 5.0
STDIN = "-"
# One quick retry for REST reads: the SDK's default retries a 404 for ~20 s.
REST_ATTEMPTS = 2

_EPILOG = "exit status: 0 success, 1 failure (engine, run or ticket), 2 bad input"


class CommandError(Exception):
    """An expected failure: printed as one line, no traceback."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


class BadInputError(CommandError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_BAD_INPUT)


# -- argument types and input checks (no engine needed) ----------------------------


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {value!r}")
    return seconds


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value!r}")
    return number


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def lookback(value: str) -> timedelta:
    """``90m``, ``12h``, ``3d``: at most 7 days."""
    match = _DURATION.match(value.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 12h or 3d: {value!r}")
    span = timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not timedelta(0) < span <= timedelta(days=7):
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 7d: {value!r}")
    return span


def run_ref(value: str) -> str:
    """A run id (UUID) or a ticket id, checked before anything connects."""
    from workflows.transcript import is_run_id

    if is_run_id(value) or re.match(TICKET_ID_PATTERN, value):
        return value
    raise argparse.ArgumentTypeError(f"neither a run id nor a ticket id: {value!r}")


def read_text(value: str, what: str, stdin: IO[str]) -> str:
    """An argument's text, or standard input for ``-``."""
    if value != STDIN:
        return value
    try:
        return stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read the {what} from standard input: {exc}") from exc


def read_body(args: argparse.Namespace, stdin: IO[str]) -> str:
    """``--body TEXT`` or ``--body-file PATH`` (``-`` for stdin); argparse allows just one."""
    if args.body_file is None:
        return str(args.body)
    if args.body_file == STDIN:
        return read_text(STDIN, "body", stdin)
    try:
        return Path(args.body_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read the body file {args.body_file}: {exc}") from exc


def load_attachments(paths: list[Path], limits: EvidenceLimits) -> list[tuple[str, Path]]:
    """Check the files without reading them; each is named after its base name.

    Names, count and sizes are the evidence limits' rules (the same for the
    API and Python callers); here also what concerns files: that each exists
    and is a regular file. Nothing is read until the engine has answered.
    """
    files = []
    for path in paths:
        if not path.exists():
            raise BadInputError(f"attachment not found: {path}")
        if not path.is_file():
            raise BadInputError(f"attachment is not a regular file: {path}")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise BadInputError(f"cannot read attachment {path}: {exc.strerror or exc}") from exc
        files.append((path.name, path, size))
    try:
        check_uploads([(name, size) for name, _, size in files], limits)
    except EvidenceRefusedError as exc:
        raise BadInputError(str(exc)) from exc
    return [(name, path) for name, path, _ in files]


def build_ticket(args: argparse.Namespace, stdin: IO[str]) -> Ticket:
    """The ticket ``submit`` would send (attachments not yet stored); raises BadInputError."""
    try:
        return Ticket(
            ticket_id=args.ticket_id or new_ticket_id(),
            customer_email=args.email,
            subject=args.subject,
            body=read_body(args, stdin),
        )
    except ValidationError as exc:
        raise BadInputError(_first_line(exc)) from exc


def store_attachments(
    settings: Settings, ticket: Ticket, files: list[tuple[str, Path]]
) -> IngestResult:
    """Stream the files into the evidence store; one-line errors for refusals and outages."""
    from workflows.client import ingest_evidence
    from workflows.deps import open_evidence_store

    with contextlib.ExitStack() as stack:
        uploads = []
        for name, path in files:
            try:
                uploads.append(Upload(name, stack.enter_context(path.open("rb"))))
            except OSError as exc:
                reason = exc.strerror or exc
                raise BadInputError(f"cannot read attachment {path}: {reason}") from exc
        try:
            store = open_evidence_store(settings)
            return ingest_evidence(settings, store, ticket.ticket_id, uploads)
        except EvidenceRefusedError as exc:
            raise BadInputError(str(exc)) from exc
        except StoreUnavailableError as exc:
            raise CommandError(f"the evidence store is unavailable: {exc}") from exc
        except EvidenceError as exc:
            raise CommandError(f"cannot store the attachments: {exc}") from exc


def build_reply(args: argparse.Namespace, stdin: IO[str]) -> CustomerReply:
    try:
        return CustomerReply(
            ticket_id=args.ticket,
            message=read_text(args.message, "message", stdin),
            resolved=args.resolved,
        )
    except ValidationError as exc:
        raise BadInputError(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        return first_error(exc)
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- running a command ---------------------------------------------------------------


def _fail(message: str) -> None:
    print(f"support-agent: error: {message}", file=sys.stderr)


def run_command(body: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run an async command body; expected failures become one line on stderr."""
    from hatchet_sdk.clients.rest.exceptions import ApiException

    from workflows.engine import EngineUnavailableError
    from workflows.transcript import TranscriptError

    try:
        return asyncio.run(body())
    except CommandError as exc:
        _fail(str(exc))
        return exc.status
    except (EngineUnavailableError, TranscriptError) as exc:
        _fail(str(exc))
        return EXIT_FAILED
    except ApiException as exc:
        _fail(f"the engine's API answered {exc.status} {exc.reason or ''}".rstrip())
        return EXIT_FAILED
    except Exception as exc:
        if not type(exc).__module__.startswith("grpc"):
            raise
        # The engine answered the version check, then failed this call (restart, overload).
        details = getattr(exc, "details", None)
        reason = (details() if callable(details) else None) or _first_line(exc)
        _fail(f"the engine refused the request: {reason}")
        return EXIT_FAILED


async def connect_checked(settings: Settings) -> Hatchet:
    """A client whose engine has answered; only then may anything be changed."""
    from workflows.client import check_engine
    from workflows.engine import EngineUnavailableError, connect

    try:
        hatchet = connect(settings)
    except EngineUnavailableError:
        raise
    except Exception as exc:  # a stale or broken engine.json, a bad token
        reason = _first_line(exc)
        raise EngineUnavailableError(f"cannot set up the Hatchet client: {reason}") from exc
    hatchet.config.tenacity.max_attempts = REST_ATTEMPTS
    # The REST list warns about ranges of a week; `tickets --since 7d` is one on purpose.
    warnings.filterwarnings("ignore", "Listing runs with a date range", RuntimeWarning)
    await check_engine(hatchet, within=ENGINE_CHECK_SECONDS)
    return hatchet


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


# -- submit --------------------------------------------------------------------------


def submit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        ticket = build_ticket(args, sys.stdin)
        files = load_attachments(args.attach, settings.evidence)
    except BadInputError as exc:
        _fail(str(exc))
        return exc.status
    return run_command(lambda: _submit(args, settings, ticket, files))


async def _submit(
    args: argparse.Namespace, settings: Settings, ticket: Ticket, files: list[tuple[str, Path]]
) -> int:
    from cli.render import Terminal
    from cli.watch import Progress, follow
    from evidence.ingest import release
    from workflows.client import submit_ticket, with_evidence
    from workflows.support import build_support_workflow

    hatchet = await connect_checked(settings)
    workflow = build_support_workflow(hatchet, settings)
    # Only now, with the engine answering, are the files read and stored.
    stored = await asyncio.to_thread(store_attachments, settings, ticket, files)
    for warning in stored.warnings:
        print(f"support-agent: warning: {warning}", file=sys.stderr)
    ticket = with_evidence(ticket, stored)
    try:
        ref = await submit_ticket(
            hatchet, workflow, ticket, settings, reply_timeout_seconds=args.reply_timeout
        )
    except BaseException:
        from workflows.deps import open_evidence_store

        release(open_evidence_store(settings), stored.hold)  # nothing started: nothing held
        raise
    run_id = ref.workflow_run_id
    out = Terminal.for_stream(sys.stdout)
    if not args.json:
        count = len(ticket.attachments)
        attached = f" with {count} attachment{'s' if count != 1 else ''}" if count else ""
        out.line(f"submitted ticket {out.style(ticket.ticket_id, 'bold')}{attached}")
        out.line(f"run {run_id}")
        if not args.wait:
            out.line(out.style(f"follow it with: support-agent watch {run_id}", "dim"))
    if not args.wait:
        if args.json:
            _print_json({"ticket_id": ticket.ticket_id, "run_id": run_id})
        return EXIT_OK
    # The progress goes to stderr, so stdout keeps only the result.
    progress = Progress(Terminal.for_stream(sys.stderr), announce_changes=False)
    transcript = await follow(hatchet, run_id, printer=None, progress=progress)
    return _report_end(transcript, out, as_json=args.json)


def _report_end(transcript: Transcript, out: Terminal, *, as_json: bool) -> int:
    """The outcome of a finished run; exit 0 for resolved or escalated."""
    from cli.render import outcome_lines

    if as_json:
        outcome = transcript.outcome.model_dump(mode="json") if transcript.outcome else None
        _print_json(
            {
                "ticket_id": transcript.ticket.ticket_id,
                "run_id": transcript.run_id,
                "status": transcript.status,
                "outcome": outcome,
                "error": transcript.error,
            }
        )
    else:
        for line in outcome_lines(transcript, out.style):
            out.line(line)
        if transcript.outcome is not None:
            for number, reply in enumerate(transcript.outcome.replies, 1):
                out.line(out.style(f"  reply {number}:", "dim"))
                for text in reply.strip().split("\n"):
                    out.line(f"    {text}".rstrip())
    if transcript.status in ("resolved", "escalated"):
        return EXIT_OK
    reason = transcript.error or "no outcome"
    _fail(f"ticket {transcript.ticket.ticket_id} {transcript.status}: {reason}")
    return EXIT_FAILED


# -- reply ---------------------------------------------------------------------------


def reply(args: argparse.Namespace, settings: Settings) -> int:
    try:
        message = build_reply(args, sys.stdin)
    except BadInputError as exc:
        _fail(str(exc))
        return exc.status
    return run_command(lambda: _reply(message, settings))


async def _reply(message: CustomerReply, settings: Settings) -> int:
    from workflows.client import TicketClosedError, TicketNotFoundError, reply_to_ticket

    hatchet = await connect_checked(settings)
    try:
        event_id = await reply_to_ticket(hatchet, message)
    except TicketNotFoundError as exc:
        raise CommandError(f"{exc} (see: support-agent tickets)") from exc
    except TicketClosedError as exc:
        raise CommandError(str(exc)) from exc
    marked = " (marked resolved)" if message.resolved else ""
    print(f"reply sent to ticket {message.ticket_id}{marked}: event {event_id}")
    return EXIT_OK


# -- watch and show ------------------------------------------------------------------


def watch(args: argparse.Namespace, settings: Settings) -> int:
    return run_command(lambda: _watch(args, settings))


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from cli.render import Terminal, TranscriptPrinter
    from cli.watch import Progress, follow
    from workflows.transcript import resolve_run_id

    hatchet = await connect_checked(settings)
    run_id = await resolve_run_id(hatchet, args.run)
    out = Terminal.for_stream(sys.stdout)
    printer = TranscriptPrinter(out)
    transcript = await follow(hatchet, run_id, printer=printer, progress=Progress(out))
    printer.finish(transcript)
    return EXIT_OK if transcript.status in ("resolved", "escalated") else EXIT_FAILED


def show(args: argparse.Namespace, settings: Settings) -> int:
    return run_command(lambda: _show(args, settings))


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    from cli.render import Terminal, TranscriptPrinter, dashboard_lines
    from workflows.dashboard import find_dashboard
    from workflows.transcript import fetch_transcript, resolve_run_id

    hatchet = await connect_checked(settings)
    transcript = await fetch_transcript(hatchet, await resolve_run_id(hatchet, args.run))
    if args.json:
        _print_json(transcript.model_dump(mode="json"))
        return EXIT_OK
    printer = TranscriptPrinter(Terminal.for_stream(sys.stdout))
    if transcript.finished:
        printer.finish(transcript)
    else:
        printer.update(transcript)
        printer.term.line()
        printer.term.line(printer.style.status(transcript.status) + " (the run is still going)")
    board = find_dashboard(settings, hatchet.tenant_id, hatchet.config.server_url)
    if board is not None:
        printer.term.line()
        for line in dashboard_lines(transcript, board, printer.style):
            printer.term.line(line)
    return EXIT_OK


# -- tickets -------------------------------------------------------------------------


def tickets(args: argparse.Namespace, settings: Settings) -> int:
    return run_command(lambda: _tickets(args, settings))


async def _tickets(args: argparse.Namespace, settings: Settings) -> int:
    from cli.render import Style, colour_enabled, for_terminal, human_age, tickets_table
    from workflows.transcript import describe, summarize_run, ticket_runs

    hatchet = await connect_checked(settings)
    runs = await ticket_runs(hatchet, limit=args.limit, since=args.since)
    summaries = [
        s for s in await asyncio.gather(*(summarize_run(hatchet, r) for r in runs)) if s is not None
    ]
    if args.json:
        _print_json([s.model_dump(mode="json") for s in summaries])
    elif not summaries:
        span = human_age(args.since.total_seconds())
        print(f"no tickets in the last {span} in {describe(hatchet)}")
    else:
        print(for_terminal(tickets_table(summaries, Style(colour_enabled(sys.stdout)))))
    return EXIT_OK


# -- parsers -------------------------------------------------------------------------


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Usage errors as one line on stderr (exit 2), pointing at --help."""

    def error(message: str) -> NoReturn:
        parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def add_ticket_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add submit, reply, watch, show and tickets to the ``support-agent`` parser."""

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return one_line_errors(
            commands.add_parser(name, help=help_text, description=description, epilog=_EPILOG)
        )

    p = command(
        "submit",
        "submit a ticket",
        "Submit a support ticket to the agent and print its ticket and run ids. "
        "Everything is checked before anything is sent.",
    )
    p.add_argument("email", metavar="EMAIL", help="the customer's email address")
    p.add_argument("subject", metavar="SUBJECT", help="the ticket's subject")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", metavar="TEXT", help="the ticket's text")
    body.add_argument(
        "--body-file", metavar="PATH", help="read the ticket's text from a file ('-' for stdin)"
    )
    p.add_argument(
        "--attach",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="attach a file, named after its base name (repeatable; by default at most 50 "
        "files, 200 MiB each, 1 GiB in all; .zip, .tar, .tar.gz/.tgz and .gz are also unpacked "
        "for the code)",
    )
    p.add_argument("--ticket-id", metavar="ID", help="default: a new T-<12 hex digits>")
    p.add_argument(
        "--reply-timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="how long to wait for the customer's reply before escalating "
        "(default: SUPPORT_AGENT_REPLY_TIMEOUT_SECONDS, 48 h)",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the run to its end and print the outcome (exit 0 if resolved or escalated)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=submit)

    p = command(
        "reply",
        "send the customer's reply to a waiting ticket",
        "Send the customer's reply to the ticket's run (event support:customer-reply, "
        "scoped to the ticket id).",
    )
    p.add_argument("ticket", metavar="TICKET", help="the ticket id")
    p.add_argument("message", metavar="MESSAGE", help="the reply; '-' reads it from stdin")
    p.add_argument(
        "--resolved",
        action="store_true",
        help="the customer confirms the problem is solved: the ticket closes as resolved",
    )
    p.set_defaults(handler=reply)

    run_help = "a run id, or a ticket id for its latest run"
    p = command(
        "watch",
        "follow a ticket run live",
        "Follow a ticket run live: the model's text as it streams, each script (purpose and "
        "code) as it starts, its output, each reply and escalation, until the run ends. "
        "Exit 0 if it ends resolved or escalated.",
    )
    p.add_argument("run", metavar="RUN", type=run_ref, help=run_help)
    p.set_defaults(handler=watch)

    p = command(
        "show",
        "print a ticket run's whole transcript",
        "Print a ticket run's transcript: the ticket, triage, every model turn, every script "
        "and its output, each reply, the escalation packet and the outcome.",
    )
    p.add_argument("run", metavar="RUN", type=run_ref, help=run_help)
    p.add_argument("--json", action="store_true", help="print the transcript as JSON")
    p.set_defaults(handler=show)

    p = command(
        "tickets",
        "list recent tickets",
        "List recent tickets in this namespace, newest first, with their status (queued, "
        "diagnosing, waiting for customer, resolved, escalated, failed, cancelled), age and cost "
        "(tokens and sandbox seconds: from the outcome once finished, else summed from the "
        "finished child tasks).",
    )
    p.add_argument(
        "--limit", type=positive_int, default=20, metavar="N", help="at most N (default 20)"
    )
    p.add_argument(
        "--since",
        type=lookback,
        default=lookback("24h"),
        metavar="DURATION",
        help="how far back, e.g. 90m, 12h, 3d (default 24h, at most 7d)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=tickets)
