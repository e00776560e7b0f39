"""Transcripts built from task-run records, and how show, watch and tickets print them."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from agent.budget import Spent
from agent.llm import TurnResult, Usage
from agent.packet import EscalationPacket, ScriptRecord
from agent.tickets import Ticket, TriageResult
from cli.render import (
    Style,
    Terminal,
    TranscriptPrinter,
    colour_enabled,
    for_terminal,
    highlight,
    human_age,
    status_line,
    tickets_table,
)
from tests.conftest import attachment, make_run
from workflows.diagnose import TicketState
from workflows.models import (
    CodeRunRequest,
    CodeRunResult,
    EscalationRecord,
    EscalationRequest,
    ReplyEvent,
    ReplyRequest,
    ReplySent,
    TicketOutcome,
    TicketStatus,
)
from workflows.transcript import (
    TaskRun,
    Transcript,
    TranscriptError,
    build_transcript,
    summarize,
    unwrap_input,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
RUN_ID = "0e080229-379d-4c75-8620-2346e590674f"
TICKET = Ticket(
    ticket_id="T-0123456789ab",
    customer_email="dana@example.com",
    subject="CSV export fails",
    body="Every export fails.\nLog attached.",
    attachments=[attachment("api.log", b"ERROR pool exhausted\n")],
)
CODE = 'print("FINDING: api.log has 1 error line")\n'
TRIAGE = TriageResult(category="data", priority="medium", reason="category data")


def envelope(payload: Any) -> dict[str, Any]:
    """How the REST list stores a standalone task's input."""
    data = payload.model_dump(mode="json")
    return {"input": data, "parents": {}, "triggers": {}, "user_data": {}, "overrides": {}}


def child(task: str, seconds: float, payload: Any, output: Any = None, **kw: Any) -> TaskRun:
    status = kw.pop("status", "COMPLETED" if output is not None else "RUNNING")
    return TaskRun(
        run_id=kw.pop("run_id", f"{task}-{seconds}"),
        task=task,
        status=status,
        created_at=T0 + timedelta(seconds=seconds),
        input=unwrap_input(envelope(payload)),
        output=output.model_dump(mode="json") if output is not None else {},
        parent_id=RUN_ID,
        **kw,
    )


def turn(seconds: float, text: str, tools: list[str], tokens: int = 0) -> TaskRun:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": f"t{i}", "name": n, "input": {}} for i, n in enumerate(tools)
    ]
    result = TurnResult(
        planner="claude", content=content, stop_reason="tool_use", usage=Usage(output_tokens=tokens)
    )
    return child("llm-turn", seconds, TICKET, result)


def script(seconds: float, step: int, finished: bool = True, **result: Any) -> TaskRun:
    request = CodeRunRequest(
        ticket_id=TICKET.ticket_id,
        customer=TICKET.customer_email,
        round=1,
        step=step,
        purpose=f"Check number {step}",
        language="python",
        code=CODE,
        evidence=[ref for a in TICKET.attachments for ref in a.inputs()],
        root_run_id=RUN_ID,
        timeout_seconds=60,
    )
    output = CodeRunResult(
        purpose=request.purpose,
        exit_code=result.get("exit_code", 0),
        timed_out=False,
        oom_killed=False,
        duration_seconds=0.25,
        stdout=result.get("stdout", "FINDING: api.log has 1 error line\n"),
        stderr=result.get("stderr", ""),
        summary="ok",
    )
    return child("run-code", seconds, request, output if finished else None, run_id=f"code-{step}")


def reply(seconds: float, round_number: int = 1, finished: bool = True) -> TaskRun:
    request = ReplyRequest(
        ticket_id=TICKET.ticket_id,
        customer_email=TICKET.customer_email,
        round=round_number,
        message="Hi,\nthe pool is exhausted.",
        findings=["pool exhausted"],
        closes_ticket=False,
    )
    output = ReplySent(ticket_id=TICKET.ticket_id, round=round_number, message=request.message)
    return child("send-reply", seconds, request, output if finished else None)


def received(seconds: float, round_number: int, payload: Any) -> TaskRun:
    """A ``receive-reply`` child: the event as it came, and what was made of it."""
    from workflows.steps import receive_reply

    event = ReplyEvent(ticket_id=TICKET.ticket_id, round=round_number, payload=payload)
    return child("receive-reply", seconds, event, receive_reply(event))


def packet() -> EscalationPacket:
    """What the workflow hands to a human, built by the workflow's own state."""
    record = ScriptRecord(round=1, step=1, purpose="Check number 1", language="python", code=CODE)
    state = TicketState(
        run=make_run(TICKET, reply_timeout_seconds=5),
        triage=TRIAGE,
        messages=[],
        spent=Spent(steps=2, code_runs=2, sandbox_seconds=0.5, tokens=1234),
        scripts=[record],
        replies=["Hi"],
        hypotheses=["the pool is exhausted"],
        planner="claude",
    )
    return state.packet("no reply from the customer within 5 s")


def ticket_run(
    status: str, outcome: TicketOutcome | None = None, error: str | None = None
) -> TaskRun:
    return TaskRun(
        run_id=RUN_ID,
        task="support-ticket",
        status=status,
        created_at=T0,
        finished_at=T0 + timedelta(seconds=7) if status != "RUNNING" else None,
        input=make_run(TICKET, reply_timeout_seconds=5).model_dump(mode="json"),
        output=outcome.model_dump(mode="json") if outcome else {},
        error=error,
    )


def escalated_outcome(customer_replies: list[str] | None = None) -> TicketOutcome:
    return TicketOutcome(
        ticket_id=TICKET.ticket_id,
        status=TicketStatus.ESCALATED,
        triage_category="data",
        triage_priority="medium",
        initial_reply="Hi",
        replies=["Hi"],
        customer_replies=customer_replies or [],
        escalation_reason="no reply from the customer within 5 s",
        escalation=packet(),
        rounds=1,
        scripts_run=2,
        planner="claude",
        spent=Spent(steps=2, code_runs=2, sandbox_seconds=0.5, tokens=1234),
    )


def full_children() -> list[TaskRun]:
    return [
        child("triage-ticket", 0, TICKET, TRIAGE),
        turn(1, "Let me look at the log.", ["run_code", "run_code"], tokens=1000),
        # Parallel code runs created in the same instant: ordered by step.
        script(2, 2, stdout="", stderr="Traceback: boom\n", exit_code=1),
        script(2, 1),
        turn(3, "", ["reply_to_customer"], tokens=234),
        reply(4),
        child(
            "escalate-ticket",
            9,
            EscalationRequest(run_id=RUN_ID, timestamp=T0, packet=packet()),
            EscalationRecord(ticket_id=TICKET.ticket_id, reason="r", summary="s"),
        ),
    ]


def finished_transcript() -> Transcript:
    return build_transcript(ticket_run("COMPLETED", escalated_outcome()), full_children())


def printed(t: Transcript, colour: bool = False) -> str:
    out = io.StringIO()
    TranscriptPrinter(Terminal(out, Style(colour), live=False)).finish(t)
    return out.getvalue()


# -- building transcripts ----------------------------------------------------------------


def test_transcript_orders_every_child_and_takes_cost_from_the_outcome() -> None:
    t = finished_transcript()
    assert [e.kind for e in t.entries] == [
        "turn",
        "script",
        "script",
        "turn",
        "reply",
        "escalation",
    ]
    assert [s.step for s in t.scripts] == [1, 2]
    assert t.scripts[1].stderr == "Traceback: boom\n" and t.scripts[1].exit_code == 1
    assert (t.status, t.triage, t.cost.tokens, t.cost.sandbox_seconds) == (
        "escalated",
        TRIAGE,
        1234,
        0.5,
    )
    assert t.turns[0].tools == ["run_code", "run_code"] and t.turns[0].tokens == 1000
    assert t.escalation is not None and t.escalation.hypotheses == ["the pool is exhausted"]
    assert t.ticket.attachments[0].name == "api.log"


def test_transcript_json_is_a_stable_document() -> None:
    document = json.loads(finished_transcript().model_dump_json())
    assert list(document) == [
        "version",
        "run_id",
        "ticket",
        "status",
        "run_status",
        "created_at",
        "finished_at",
        "error",
        "triage",
        "entries",
        "escalation",
        "outcome",
        "cost",
    ]
    assert "content_b64" not in json.dumps(document["ticket"])  # refs, not content
    first_script = next(e for e in document["entries"] if e["kind"] == "script")
    assert {"id", "step", "purpose", "language", "code", "stdout", "stderr", "exit_code"} <= set(
        first_script
    )


def test_customer_replies_are_read_from_their_receive_reply_children() -> None:
    outcome = escalated_outcome(customer_replies=["still broken"])
    children = [*full_children()[:6], received(8, 1, {"message": "still broken"}), reply(10, 2)]
    t = build_transcript(ticket_run("COMPLETED", outcome), children)
    kinds = [e.kind for e in t.entries]
    assert kinds[4:] == ["reply", "customer_reply", "reply"]
    assert t.entries[5].message == "still broken"  # type: ignore[union-attr]


def test_a_running_ticket_shows_the_customer_reply_before_the_next_turn() -> None:
    children = [
        turn(1, "x", []),
        reply(2),
        received(15, 1, {"ticket_id": TICKET.ticket_id, "message": "Still 500 after the fix."}),
        child("llm-turn", 20, TICKET, None, run_id="turn-2"),
    ]
    t = build_transcript(ticket_run("RUNNING"), children)
    assert [e.kind for e in t.entries] == ["turn", "reply", "customer_reply", "turn"]
    assert t.entries[2].message == "Still 500 after the fix."  # type: ignore[union-attr]
    assert (t.entries[2].round, t.entries[3].round) == (1, 2)  # type: ignore[union-attr]
    assert t.status == "diagnosing"


def test_a_refused_reply_event_is_shown_and_the_ticket_still_waits() -> None:
    children = [turn(1, "x", []), reply(2), received(5, 1, {"message": ""})]
    t = build_transcript(ticket_run("RUNNING"), children)
    refused = t.entries[-1]
    assert refused.kind == "customer_reply" and not refused.accepted
    assert refused.error == "the message is empty"
    assert t.status == "waiting"
    text = printed(t)
    assert "reply event refused" in text and "still waiting for a valid reply" in text


@pytest.mark.parametrize(
    ("status", "children", "expected"),
    [
        ("QUEUED", [], "queued"),
        ("RUNNING", [turn(1, "x", ["run_code"]), script(2, 1, finished=False)], "diagnosing"),
        ("RUNNING", [turn(1, "x", []), reply(2)], "waiting"),
        ("RUNNING", [turn(1, "x", []), reply(2, finished=False)], "diagnosing"),
        ("FAILED", [], "failed"),
        ("CANCELLED", [], "cancelled"),
    ],
)
def test_status_of_an_unfinished_or_failed_run(
    status: str, children: list[TaskRun], expected: str
) -> None:
    assert build_transcript(ticket_run(status), children).status == expected


def test_running_cost_is_summed_from_finished_children() -> None:
    children = [turn(1, "x", ["run_code"], tokens=700), script(2, 1), script(3, 2, finished=False)]
    t = build_transcript(ticket_run("RUNNING"), children)
    assert (t.cost.tokens, t.cost.sandbox_seconds) == (700, 0.25)
    summary = summarize(t, now=T0 + timedelta(minutes=3))
    assert (summary.status, summary.age_seconds, summary.scripts_run) == ("diagnosing", 180, 2)


def test_a_run_that_is_not_a_ticket_is_refused() -> None:
    run = TaskRun(run_id=RUN_ID, task="other", status="COMPLETED", created_at=T0, input={"x": 1})
    with pytest.raises(TranscriptError, match="not a support ticket"):
        build_transcript(run, [])


def test_list_rows_are_unwrapped_and_lose_their_namespace() -> None:
    row = SimpleNamespace(
        task_external_id="abc",
        workflow_name="t1234_run-code",
        display_name="run-code-17953",
        status=SimpleNamespace(value="COMPLETED"),
        created_at=T0,
        finished_at=None,
        input={"input": {"code": "x"}, "parents": {}, "triggered_by": "manual"},
        output={"stdout": "hi"},
        error_message="",
        parent_task_external_id=RUN_ID,
    )
    run = TaskRun.from_summary(row, "t1234_")
    assert (run.task, run.status, run.input, run.error) == (
        "run-code",
        "COMPLETED",
        {"code": "x"},
        None,
    )


# -- printing ---------------------------------------------------------------------------


def test_show_prints_the_whole_transcript() -> None:
    text = printed(finished_transcript())
    assert "\x1b[" not in text
    for expected in (
        "Ticket T-0123456789ab  ·  run " + RUN_ID,
        "attached  api.log (21 B, text/plain)",
        "│ Every export fails.",
        "triage: data · medium",
        "▸ model turn 1 · claude",
        "  Let me look at the log.",
        "→ run_code x2",
        "▸ script 1 · python · Check number 1",
        '1 │ print("FINDING: api.log has 1 error line")',
        "✓ script 1 exit 0 · 0.25 s",
        "│ FINDING: api.log has 1 error line",
        "✗ script 2 exit 1 · 0.25 s",
        "stderr",
        "▸ reply sent to dana@example.com · round 1",
        "│ the pool is exhausted.",
        "▸ escalated to a human · no reply from the customer within 5 s",
        "   - the pool is exhausted",
        "ESCALATED  T-0123456789ab after 1 round · 2 scripts · 1,234 tokens · 0.50 s in "
        "sandboxes · 7.0 s",
        "  reason: no reply from the customer within 5 s",
    ):
        assert expected in text, expected
    assert text.index("script 1 ·") < text.index("script 2 ·") < text.index("reply sent")


def test_colour_and_highlighting_only_when_enabled() -> None:
    text = printed(finished_transcript(), colour=True)
    assert "\x1b[33mESCALATED\x1b[0m" in text
    assert "\x1b[36mprint\x1b[39" in text  # pygments coloured the builtin


def test_failed_run_prints_its_error() -> None:
    t = build_transcript(ticket_run("FAILED", error="worker lost"), [])
    assert printed(t).rstrip().endswith("FAILED  T-0123456789ab: worker lost")


def test_watch_prints_only_what_is_new_and_streams_in_between() -> None:
    out = io.StringIO()
    printer = TranscriptPrinter(Terminal(out, Style(False), live=False))
    base = [child("triage-ticket", 0, TICKET, TRIAGE)]
    running_turn = child("llm-turn", 1, TICKET, None, run_id="turn-1")
    printer.update(build_transcript(ticket_run("RUNNING"), [*base, running_turn]))
    assert "▸ model turn 1" in out.getvalue()

    printer.stream("turn-1", "Let me look")
    printer.stream("turn-1", " at the log.")
    done_turn = turn(1, "Let me look at the log.", ["run_code"])
    done_turn = TaskRun(**{**done_turn.__dict__, "run_id": "turn-1"})
    printer.update(
        build_transcript(ticket_run("RUNNING"), [*base, done_turn, script(2, 1, finished=False)])
    )
    printer.stream("code-1", '{"event": "code-start", "step": 1, "purpose": "Check number 1"}\n')
    printer.stream("code-1", '{"event": "code-output", "step": 1, "stdout": "FINDING: x\\n", ')
    printer.stream("code-1", '"stderr": "", "exit_code": 0}\n')
    text = out.getvalue()
    assert text.count("Let me look at the log.") == 1
    assert "▸ script 1 · python · Check number 1" in text and "│ FINDING: x" in text

    # The finished record does not print the output a second time.
    printer.finish(
        build_transcript(
            ticket_run("COMPLETED", escalated_outcome()), [*base, done_turn, script(2, 1)]
        )
    )
    text = out.getvalue()
    assert text.count("script 1 exit 0") == 1 and text.count("▸ script 1") == 1
    assert text.count("▸ model turn 1") == 1


def test_a_turn_streamed_only_in_part_is_printed_whole_from_its_record() -> None:
    out = io.StringIO()
    printer = TranscriptPrinter(Terminal(out, Style(False), live=False))
    running = child("llm-turn", 1, TICKET, None, run_id="turn-1")
    printer.update(build_transcript(ticket_run("RUNNING"), [running]))
    printer.stream("turn-1", "the log.")  # the beginning was streamed before we subscribed
    done = TaskRun(**{**turn(1, "Let me look at the log.", []).__dict__, "run_id": "turn-1"})
    printer.update(build_transcript(ticket_run("RUNNING"), [done]))
    assert out.getvalue().endswith(
        "  the log.\n  (the whole text, as recorded:)\n  Let me look at the log.\n"
    )


def test_status_line_animates_only_on_a_terminal() -> None:
    t = build_transcript(ticket_run("RUNNING"), [turn(1, "x", []), reply(2)])
    line = status_line(t, 0, now=T0 + timedelta(seconds=75))
    assert line.startswith("⠋ waiting for customer · 1m · 0 scripts")
    assert "support-agent reply T-0123456789ab MESSAGE" in line

    tty = io.StringIO()
    term = Terminal(tty, Style(False), live=True)
    term.status("working")
    term.line("next")
    assert tty.getvalue() == "\r\x1b[Kworking\r\x1b[Knext\n"
    term.write("half a line")
    term.status("hidden while a line is unfinished")
    assert "hidden" not in tty.getvalue()

    pipe = io.StringIO()
    Terminal(pipe, Style(False), live=False).status("working")
    assert pipe.getvalue() == ""


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "env", "expected"),
    [
        (FakeTTY(), {}, True),
        (FakeTTY(), {"NO_COLOR": "1"}, False),
        (FakeTTY(), {"TERM": "dumb"}, False),
        (io.StringIO(), {}, False),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    stream: io.StringIO, env: dict[str, str], expected: bool
) -> None:
    assert colour_enabled(stream, env) is expected


def test_tickets_table_aligns_columns() -> None:
    finished = summarize(finished_transcript(), now=T0 + timedelta(hours=2))
    waiting = summarize(
        build_transcript(ticket_run("RUNNING"), [turn(1, "x", [], tokens=50), reply(2)]),
        now=T0 + timedelta(seconds=30),
    )
    lines = tickets_table([waiting, finished], Style(False)).splitlines()
    assert lines[0].split() == ["TICKET", "STATUS", "AGE", "TOKENS", "SANDBOX", "RUN", "SUBJECT"]
    assert "waiting for customer" in lines[1] and "30s" in lines[1] and " 50 " in lines[1]
    assert "escalated" in lines[2] and "2h" in lines[2] and "1,234" in lines[2]
    assert lines[1].index(RUN_ID) == lines[2].index(RUN_ID)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59, "59s"), (60, "1m"), (7200, "2h"), (90000, "1d")]
)
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_what_customers_scripts_and_the_model_wrote_cannot_drive_the_terminal() -> None:
    """A window title, a cleared screen, a line overwritten with \\r, a hidden or reversed
    text: shown escaped, never sent to the terminal as controls."""
    hostile = Ticket(
        ticket_id="T-1",
        customer_email="dana@example.com",
        subject="Help \x1b]0;PWNED\x07 \x1b[2J",
        body="hello\rFAKE: resolved by admin \u202eeht \x1b[8mhidden",
    )
    run = TaskRun(
        run_id=RUN_ID,
        task="support-ticket",
        status="RUNNING",
        created_at=T0,
        input=make_run(hostile, reply_timeout_seconds=5).model_dump(mode="json"),
    )
    stdout = "ok\r\x1b[31mFAKE OK\x1b]8;;http://evil\x07link\x1b]8;;\x07\n"
    t = build_transcript(run, [script(2, 1, stdout=stdout, stderr="\x1b[2K\x1b[1A erased")])
    out = io.StringIO()
    TranscriptPrinter(Terminal(out, Style(False), live=False)).update(t)
    shown = out.getvalue() + tickets_table([summarize(t, T0)], Style(False))
    for control in ("\x1b]", "\x1b[2J", "\x1b[2K", "\x1b[1A", "\x1b[8m", "\r", "\u202e", "\x07"):
        assert control not in for_terminal(shown), repr(control)
    assert "\\x1b]0;PWNED\\x07" in for_terminal(shown) and "\\x0dFAKE" in out.getvalue()
    assert "\x1b[31m" in out.getvalue()  # a colour is harmless: kept


def test_colours_made_here_pass_and_text_is_untouched() -> None:
    styled = Style(True)("ok", "green") + " " + highlight("print(1)", "python", Style(True))
    assert for_terminal(styled) == styled
    plain = "naïve 日本語 tab\there\nnext line"
    assert for_terminal(plain) == plain


def test_a_child_record_of_another_shape_is_left_out_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A payload gone or written by an older worker: the rest of the ticket still shows."""
    unreadable = replace(turn(1, "Checking.", ["run_code"]), output={}, run_id="bad-turn")
    t = build_transcript(ticket_run("RUNNING"), [unreadable, script(2, 1, stdout="1\n")])
    assert [type(e).__name__ for e in t.entries] == ["ScriptEntry"]
    assert "the record of llm-turn bad-turn is unreadable" in caplog.text
    assert summarize(t, T0).scripts_run == 1
