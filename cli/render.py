"""Terminal rendering of transcripts, outcomes and ticket lists.

Colour only on a terminal, never with ``NO_COLOR`` set or ``TERM=dumb``; the
status line of ``watch`` is drawn in place only on a terminal. Nothing here
talks to the engine, so every view is tested on plain strings.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO

from workflows.dashboard import Dashboard
from workflows.models import RunStatus, TicketStatus
from workflows.streams import CodeFinished, decode
from workflows.transcript import (
    CustomerReplyEntry,
    EscalationEntry,
    ReplyEntry,
    ScriptEntry,
    TicketSummary,
    Transcript,
    TurnEntry,
)

_TICKET_STATUSES = frozenset(s.value for s in TicketStatus)
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
BAR = "│"
STATUS_COLOURS = {
    "queued": "dim",
    "diagnosing": "cyan",
    "waiting": "magenta",
    "resolved": "green",
    "escalated": "yellow",
    "failed": "red",
    "cancelled": "red",
}
_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


def colour_enabled(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """Colour for a terminal, unless NO_COLOR is set (https://no-color.org) or TERM=dumb."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# What may reach the terminal: printable text, newlines, tabs and colour (SGR)
# sequences. Customers, their files, their scripts' output and the model write
# much of what is shown: any other control (a cursor move, a cleared screen, a
# window title, a hyperlink, a carriage return that overwrites a line, C1
# controls, bidi overrides and invisible characters) is shown escaped instead.
_NOT_FOR_TERMINALS = re.compile(
    "\x1b\\[[0-9;]*m|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _conceals(sgr: str) -> bool:
    """Whether a colour sequence hides text (parameter 8, not a 38/48 colour's own)."""
    params = sgr[2:-1].split(";")
    i = 0
    while i < len(params):
        if params[i] in ("38", "48"):  # 5;n or 2;r;g;b follows
            i += 3 if params[i + 1 : i + 2] == ["5"] else 5
            continue
        if params[i] == "8":
            return True
        i += 1
    return False


def _escaped(found: re.Match[str]) -> str:
    text = found.group()
    if len(text) > 1 and not _conceals(text):
        return text  # a colour: harmless, and ours are made this way
    code = ord(text[0])  # a control, or the ESC of a colour that hides text
    return (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") + text[1:]


def for_terminal(text: str) -> str:
    """``text`` with everything but text, newlines, tabs and colours shown escaped."""
    return _NOT_FOR_TERMINALS.sub(_escaped, text)


class Style:
    """ANSI styling that is a no-op when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *names: str) -> str:
        if not self.enabled or not names or not text:
            return text
        codes = ";".join(_CODES[n] for n in names)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def status(self, status: str, text: str | None = None) -> str:
        label = TicketStatus(status).label if status in _TICKET_STATUSES else status
        return self(text or label, STATUS_COLOURS.get(status, "bold"))


class Terminal:
    """An output stream with an optional status line kept at the bottom.

    The status line is drawn only when ``live`` (a terminal), cleared before
    any other output, and left alone while a streamed line is unfinished.
    """

    def __init__(self, stream: IO[str], style: Style, *, live: bool) -> None:
        self.stream = stream
        self.style = style
        self.live = live
        self.at_line_start = True
        self._status_shown = False

    @classmethod
    def for_stream(cls, stream: IO[str]) -> Terminal:
        isatty = getattr(stream, "isatty", None)
        live = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        return cls(stream, Style(colour_enabled(stream)), live=live)

    def write(self, text: str) -> None:
        if not text:
            return
        self.clear_status()
        self.stream.write(for_terminal(text))
        self.stream.flush()
        self.at_line_start = text.endswith("\n")

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def end_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")

    def write_indented(self, text: str, indent: str) -> None:
        """Streamed text, indented at each line start even when lines arrive in pieces."""
        out = []
        at_start = self.at_line_start
        for piece in text.splitlines(keepends=True):
            out.append((indent if at_start else "") + piece)
            at_start = piece.endswith("\n")
        self.write("".join(out))

    def status(self, text: str) -> None:
        if not self.live or not self.at_line_start:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + self.style(text[:width], "dim"))
        self.stream.flush()
        self._status_shown = True

    def clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False


# -- small formats -----------------------------------------------------------------


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def seconds_text(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def cost_text(tokens: int, sandbox_seconds: float) -> str:
    return f"{tokens:,} tokens · {seconds_text(sandbox_seconds)} in sandboxes"


def highlight(code: str, language: str, style: Style) -> str:
    """Syntax-highlighted code when colour is on (pygments), the code itself otherwise."""
    if not style.enabled:
        return code
    from pygments import highlight as pygmentize
    from pygments.formatters import TerminalFormatter
    from pygments.lexers import BashLexer, PythonLexer

    lexer = BashLexer() if language == "bash" else PythonLexer()
    return str(pygmentize(code, lexer, TerminalFormatter())).rstrip("\n")


def numbered(code: str, language: str, style: Style, indent: str = "  ") -> str:
    lines = highlight(code.strip("\n"), language, style).split("\n")
    width = len(str(len(lines)))
    return "\n".join(
        f"{indent}{style(f'{n:>{width}} {BAR}', 'dim')} {text}".rstrip()
        for n, text in enumerate(lines, 1)
    )


def quoted(text: str, style: Style, indent: str = "  ") -> str:
    return "\n".join(f"{indent}{style(BAR, 'dim')} {line}".rstrip() for line in text.split("\n"))


# -- transcripts -------------------------------------------------------------------


def ticket_header(t: Transcript, style: Style) -> list[str]:
    ticket = t.ticket
    lines = [
        f"{style('Ticket ' + ticket.ticket_id, 'bold')}  ·  run {t.run_id}",
        f"  {style('from', 'dim')}      {ticket.customer_email}",
        f"  {style('subject', 'dim')}   {ticket.subject}",
    ]
    if ticket.attachments:
        names = ", ".join(
            f"{a.name} ({human_size(a.size)}, {a.media_type})" for a in ticket.attachments
        )
        lines.append(f"  {style('attached', 'dim')}  {names}")
    lines.append("")
    lines.append(quoted(ticket.body.strip(), style))
    return lines


def triage_line(t: Transcript, style: Style) -> str:
    assert t.triage is not None
    triage = t.triage
    reason = style(f"  ({triage.reason})", "dim") if triage.reason else ""
    return f"{style('triage', 'bold')}: {triage.category} · {triage.priority}{reason}"


def heading(style: Style, text: str, detail: str = "") -> str:
    return style("▸ " + text, "bold", "cyan") + (f" · {detail}" if detail else "")


def script_result_lines(entry: ScriptEntry, style: Style) -> list[str]:
    """The verdict line, then stdout and stderr; used for REST records and streamed output."""
    took = f" · {entry.duration_seconds:.2f} s" if entry.duration_seconds else ""
    name = f"script {entry.step}"
    if entry.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        verdict = style(f"✗ {name} {entry.status.lower()}: {entry.error or 'no result'}", "red")
    elif entry.error:
        verdict = style(f"✗ {name}: the sandbox could not run it: {entry.error}", "red")
    elif entry.timed_out:
        verdict = style(f"✗ {name} timed out", "red") + took
    elif entry.oom_killed:
        verdict = style(f"✗ {name} killed: out of memory", "red") + took
    elif entry.exit_code == 0:
        verdict = style(f"✓ {name} exit 0", "green") + took
    else:
        verdict = style(f"✗ {name} exit {entry.exit_code}", "red") + took
    lines = [f"  {verdict}"]
    if entry.stdout.strip():
        lines.append(quoted(entry.stdout.rstrip("\n"), style))
    if entry.stderr.strip():
        lines.append(f"  {style('stderr', 'yellow')}")
        lines.append(quoted(entry.stderr.rstrip("\n"), style))
    if entry.output_files:
        lines.append(f"  {style('files', 'dim')}: {', '.join(entry.output_files)}")
    if not (entry.stdout.strip() or entry.stderr.strip()) and entry.status == RunStatus.COMPLETED:
        lines.append(f"  {style('(no output)', 'dim')}")
    return lines


def escalation_lines(t: Transcript, entry: EscalationEntry, style: Style) -> list[str]:
    lines = [heading(style, "escalated to a human", style(entry.reason, "yellow"))]
    packet = t.escalation
    if packet is None:
        return lines
    spent = packet.spent
    counts = [
        plural(len(packet.attachments), "attachment"),
        plural(len(packet.scripts), "script"),
        plural(len(packet.replies_sent), "reply", "replies") + " sent",
        plural(len(packet.customer_replies), "customer reply", "customer replies"),
    ]
    lines.append(
        f"  packet: {', '.join(counts)}; spent {plural(spent.steps, 'model turn')}, "
        f"{cost_text(spent.tokens, spent.sandbox_seconds)}"
    )
    if packet.hypotheses:
        lines.append("  hypotheses:")
        lines.extend(f"   - {h}" for h in packet.hypotheses)
    return lines


def outcome_lines(t: Transcript, style: Style) -> list[str]:
    """How the run ended, in two or three lines."""
    ticket_id = t.ticket.ticket_id
    if t.status in ("failed", "cancelled"):
        label = style.status(t.status, t.status.upper())
        return [f"{label}  {ticket_id}: {t.error or 'the run ' + t.status}"]
    outcome = t.outcome
    if outcome is None:
        return [f"{style.status(t.status)}  {ticket_id}"]
    took = ""
    if t.finished_at is not None:
        took = f" · {(t.finished_at - t.created_at).total_seconds():.1f} s"
    lines = [
        f"{style.status(outcome.status, outcome.status.upper())}  {ticket_id} after "
        f"{plural(outcome.rounds, 'round')} · {plural(outcome.scripts_run, 'script')} · "
        f"{cost_text(outcome.spent.tokens, outcome.spent.sandbox_seconds)}{took}"
    ]
    if outcome.escalation_reason:
        lines.append(f"  reason: {outcome.escalation_reason}")
    if outcome.planner:
        lines.append(f"  {style('planner: ' + outcome.planner, 'dim')}")
    return lines


class TranscriptPrinter:
    """Prints a transcript, and on later updates only what is new.

    ``show`` passes one finished transcript; ``watch`` passes each fresh read
    of a running one, plus the chunks the children stream in between.
    """

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.style = term.style
        self._header = False
        self._triage = False
        self._kinds: dict[str, str] = {}
        self._done: set[str] = set()
        self._streamed: dict[str, str] = {}
        self._partial: dict[str, str] = {}
        self._script_output: set[str] = set()
        self._scripts: dict[str, ScriptEntry] = {}

    def _block(self, *lines: str) -> None:
        self.term.end_line()
        self.term.line()
        for line in lines:
            self.term.line(line)

    def update(self, t: Transcript) -> None:
        if not self._header:
            self._header = True
            for line in ticket_header(t, self.style):
                self.term.line(line)
        if t.triage is not None and not self._triage:
            self._triage = True
            self._block(triage_line(t, self.style))
        for entry in t.entries:
            if entry.id in self._done:
                continue
            if isinstance(entry, TurnEntry):
                self._turn(entry)
            elif isinstance(entry, ScriptEntry):
                self._script(entry)
            elif isinstance(entry, ReplyEntry):
                self._reply(t, entry)
            elif isinstance(entry, CustomerReplyEntry):
                self._done.add(entry.id)
                if entry.accepted:
                    self._block(heading(self.style, "customer replied", f"round {entry.round}"))
                    self.term.line(quoted(entry.message.strip(), self.style))
                else:
                    refused = self.style(f"refused: {entry.error}", "yellow")
                    self._block(heading(self.style, "reply event refused", refused))
                    if entry.message.strip():
                        self.term.line(quoted(entry.message.strip(), self.style))
                    self.term.line(f"  {self.style('still waiting for a valid reply', 'dim')}")
            else:
                self._done.add(entry.id)
                self._block(*escalation_lines(t, entry, self.style))

    def finish(self, t: Transcript) -> None:
        self.update(t)
        self._block(*outcome_lines(t, self.style))

    def _first_sight(self, entry_id: str, kind: str) -> bool:
        if entry_id in self._kinds:
            return False
        self._kinds[entry_id] = kind
        return True

    def _turn(self, entry: TurnEntry) -> None:
        if self._first_sight(entry.id, "turn"):
            self._block(heading(self.style, f"model turn {entry.number}", entry.planner))
        if not RunStatus(entry.status).finished:
            return
        self._done.add(entry.id)
        streamed = self._streamed.get(entry.id, "")
        if entry.text.startswith(streamed):
            rest = entry.text[len(streamed) :]
        else:
            # The stream began after the turn did (or a retry restarted it): the record is whole.
            self.term.end_line()
            self.term.line(f"  {self.style('(the whole text, as recorded:)', 'dim')}")
            rest = entry.text
        if rest.strip():
            self.term.write_indented(rest, "  ")
        self.term.end_line()
        if entry.tools:
            counts: dict[str, int] = {}
            for name in entry.tools:
                counts[name] = counts.get(name, 0) + 1
            tools = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())
            self.term.line(f"  {self.style('→ ' + tools, 'dim')}")
        if entry.error and entry.status != RunStatus.COMPLETED:
            self.term.line(f"  {self.style('✗ ' + entry.error, 'red')}")

    def _script(self, entry: ScriptEntry) -> None:
        self._scripts[entry.id] = entry
        if self._first_sight(entry.id, "script"):
            self._block(
                heading(
                    self.style,
                    f"script {entry.step}",
                    f"{entry.language} · {self.style(entry.purpose, 'bold')}",
                ),
                numbered(entry.code, entry.language, self.style),
            )
        if not RunStatus(entry.status).finished:
            return
        self._done.add(entry.id)
        if entry.id not in self._script_output or entry.status != RunStatus.COMPLETED:
            self._script_output.add(entry.id)
            self._block(*script_result_lines(entry, self.style))

    def _reply(self, t: Transcript, entry: ReplyEntry) -> None:
        if not RunStatus(entry.status).finished:
            return
        self._done.add(entry.id)
        sent = entry.status == RunStatus.COMPLETED
        what = "reply sent" if sent else f"reply {entry.status.lower()}"
        detail = f"round {entry.round}" + (" · closes the ticket" if entry.closes_ticket else "")
        self._block(
            heading(self.style, f"{what} to {t.ticket.customer_email}", detail),
            quoted(entry.message.strip(), self.style),
        )

    def stream(self, entry_id: str, chunk: str) -> None:
        """A chunk a child streamed: model text, or JSON lines from ``run-code``."""
        kind = self._kinds.get(entry_id)
        if kind is None or entry_id in self._done:
            return
        if kind == "turn":
            self._streamed[entry_id] = self._streamed.get(entry_id, "") + chunk
            self.term.write_indented(chunk, "  ")
            return
        buffered = self._partial.get(entry_id, "") + chunk
        *lines, self._partial[entry_id] = buffered.split("\n")
        for line in lines:
            self._script_event(entry_id, line)

    def _script_event(self, entry_id: str, line: str) -> None:
        for event in decode(line):
            if not isinstance(event, CodeFinished) or entry_id in self._script_output:
                continue
            self._script_output.add(entry_id)
            live = self._scripts[entry_id].model_copy(
                update={
                    "status": RunStatus.COMPLETED.value,
                    "exit_code": event.exit_code,
                    "stdout": event.stdout,
                    "stderr": event.stderr,
                }
            )
            self._block(*script_result_lines(live, self.style))


def status_line(t: Transcript, frame: int, now: datetime | None = None) -> str:
    """``⠋ diagnosing · 12s · 2 scripts · 0 tokens · 0.3 s in sandboxes``."""
    now = now or datetime.now(tz=UTC)
    spinner = SPINNER[frame % len(SPINNER)]
    age = human_age((now - t.created_at).total_seconds())
    cost = cost_text(t.cost.tokens, t.cost.sandbox_seconds)
    text = f"{spinner} {t.status.label} · {age} · {plural(len(t.scripts), 'script')} · {cost}"
    if t.status == "waiting":
        text += f" · answer with: support-agent reply {t.ticket.ticket_id} MESSAGE"
    return text


def status_change_line(t: Transcript, style: Style) -> str:
    """What a non-terminal gets instead of the animated status line."""
    text = f"… {t.status.label}"
    if t.status == "waiting":
        text += f" (answer with: support-agent reply {t.ticket.ticket_id} MESSAGE)"
    return style(text, "dim")


# -- ticket lists -------------------------------------------------------------------


def tickets_table(rows: Sequence[TicketSummary], style: Style, subject_width: int = 48) -> str:
    headers = ["TICKET", "STATUS", "AGE", "TOKENS", "SANDBOX", "RUN", "SUBJECT"]
    table = [
        [
            r.ticket_id,
            r.status.label,
            human_age(r.age_seconds),
            f"{r.tokens:,}",
            seconds_text(r.sandbox_seconds),
            r.run_id,
            r.subject if len(r.subject) <= subject_width else r.subject[: subject_width - 1] + "…",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(len(headers))]
    right = {2, 3, 4}

    def cells(values: list[str], status: str | None) -> str:
        out = []
        for i, value in enumerate(values):
            padded = value.rjust(widths[i]) if i in right else value.ljust(widths[i])
            if status is not None and i == 1:
                padded = style.status(status, padded)
            out.append(padded)
        return "  ".join(out).rstrip()

    lines = [style(cells(headers, None), "bold")]
    lines.extend(cells(values, r.status) for values, r in zip(table, rows, strict=True))
    return "\n".join(lines)


def dashboard_lines(t: Transcript, board: Dashboard, style: Style) -> list[str]:
    """Where to review this run in the dashboard: the run, the ticket's runs, each script."""
    lines = [
        heading(style, "in the dashboard", "" if board.built else "(no dashboard build served)"),
        f"  run      {board.run_url(t.run_id)}",
        f"  ticket   {board.ticket_url(t.ticket.ticket_id)}",
    ]
    lines += [f"  script {s.step} {board.run_url(s.id)}" for s in t.scripts]
    return lines
