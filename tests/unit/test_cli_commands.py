"""The ticket commands' argument parsing and input checks, without an engine.

Bad input must fail in one line on stderr with exit status 2 before anything
connects, so nothing can be enqueued.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cli import commands
from cli.main import build_parser, main
from evidence.store import LocalStore
from workflows.engine import HANDSHAKE_ENV
from workflows.settings import Settings


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.fixture
def no_engine_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to connect fails the test: bad input must stop before that."""

    async def refuse(settings: Any) -> Any:
        raise AssertionError("connected to the engine despite bad input")

    monkeypatch.setattr(commands, "connect_checked", refuse)


def fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], status: int = 2) -> str:
    assert main(argv) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def expect_exit(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """argparse-level failures exit through SystemExit(2), also in one line."""
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_submit_arguments(tmp_path: Path) -> None:
    args = parse(
        "submit",
        "dana@example.com",
        "Export fails",
        "--attach",
        "a.log",
        "--body",
        "It fails.",
        "--attach",
        "b.csv",
        "--reply-timeout",
        "2.5",
        "--ticket-id",
        "T-1",
        "--wait",
        "--json",
    )
    assert (args.email, args.subject, args.body, args.body_file) == (
        "dana@example.com",
        "Export fails",
        "It fails.",
        None,
    )
    assert args.attach == [Path("a.log"), Path("b.csv")]
    assert (args.reply_timeout, args.ticket_id, args.wait, args.json) == (2.5, "T-1", True, True)
    assert args.handler is commands.submit


def test_other_commands_arguments() -> None:
    args = parse("reply", "T-1", "thanks", "--resolved")
    assert (args.ticket, args.message, args.resolved, args.handler) == (
        "T-1",
        "thanks",
        True,
        commands.reply,
    )
    run_id = "0e080229-379d-4c75-8620-2346e590674f"
    assert parse("watch", run_id).run == run_id
    assert parse("show", "T-1", "--json").json
    args = parse("tickets", "--limit", "5", "--since", "3d", "--json")
    assert (args.limit, args.since, args.json) == (5, timedelta(days=3), True)
    assert parse("tickets").since == timedelta(hours=24)


def test_attachments_are_named_after_their_base_name_and_stored(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "api-server.log"
    log.parent.mkdir()
    log.write_bytes(b"ERROR boom\n")
    args = parse("submit", "a@example.com", " Subject ", "--body", " Body ", "--attach", str(log))
    settings = Settings(state_dir=tmp_path / "state")
    ticket = commands.build_ticket(args, io.StringIO())
    assert re.fullmatch(r"T-[0-9a-f]{12}", ticket.ticket_id)
    assert (ticket.subject, ticket.body) == ("Subject", "Body")
    files = commands.load_attachments(args.attach, settings.evidence)
    assert files == [("api-server.log", log)]
    [attachment] = commands.store_attachments(settings, ticket, files).attachments
    assert (attachment.name, attachment.size, attachment.media_type, attachment.lines) == (
        "api-server.log",
        11,
        "text/plain",
        1,
    )
    store = LocalStore(settings.evidence_dir)
    assert b"".join(store.read(attachment.sha256, attachment.size)) == b"ERROR boom\n"


def test_body_from_a_file_or_stdin(tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("From a file.\n")
    args = parse("submit", "a@example.com", "S", "--body-file", str(body))
    assert commands.build_ticket(args, io.StringIO()).body == "From a file."
    args = parse("submit", "a@example.com", "S", "--body-file", "-")
    assert commands.build_ticket(args, io.StringIO("From stdin.\n")).body == "From stdin."


def test_reply_message_from_stdin() -> None:
    reply = commands.build_reply(parse("reply", "T-1", "-"), io.StringIO("It works.\n"))
    assert (reply.ticket_id, reply.message, reply.resolved) == ("T-1", "It works.", False)


@pytest.mark.usefixtures("no_engine_calls")
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--body", "B", "--attach", "/nonexistent/app.log"], "attachment not found: "),
        (["--body", "B", "--attach", "{tmp}"], "attachment is not a regular file"),
        (["--body", "B", "--attach", "{big}"], "big.log is 1001 bytes; the limit is 1000"),
        (["--body", "B", "--attach", "{tmp}/.env"], "attachment name '.env' is not allowed"),
        (["--body", "B", "--attach", "{tmp}/a b.log"], "attachment name 'a b.log' is not"),
        (["--body", "B", "--attach", "{tmp}/-rf.log"], "attachment name '-rf.log' is not"),
        (["--body", "B", "--attach", "{tmp}/x;rm.log"], "attachment name 'x;rm.log' is not"),
        (["--body", "B", "--attach", "{tmp}/naïve.log"], "attachment name 'naïve.log' is not"),
        (["--body", "B", "--attach", "{tmp}/ok.log", "--attach", "{tmp}/d/ok.log"], "duplicate"),
        (["--body", "B", *["--attach", "{tmp}/ok.log"] * 11], "11 attachments; the limit is 10"),
        (
            ["--body", "B", *[a for i in range(5) for a in ("--attach", f"{{tmp}}/p{i}.bin")]],
            "attachments total",
        ),
        (["--body", ""], "the body is empty"),
        (["--body", " \n\t "], "the body is empty"),
        (["--body", "x" * 100_001], "the body is 100001 characters; the limit is 100000"),
        (["--body-file", "/nonexistent/body.txt"], "cannot read the body file"),
        (["--body", "B", "--ticket-id", "bad id"], "not a valid ticket id: 'bad id'"),
    ],
)
def test_bad_submit_input_fails_before_connecting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    # Small limits, so the test needs no large files; nothing may be stored either.
    for name, value in (("MAX_FILE_BYTES", 1000), ("MAX_TICKET_BYTES", 2000), ("MAX_FILES", 10)):
        monkeypatch.setenv(f"SUPPORT_AGENT_EVIDENCE__{name}", str(value))
    monkeypatch.setenv("SUPPORT_AGENT_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "d").mkdir()
    for name in (".env", "a b.log", "-rf.log", "x;rm.log", "naïve.log", "ok.log", "d/ok.log"):
        (tmp_path / name).write_text("data")
    for i in range(5):
        (tmp_path / f"p{i}.bin").write_bytes(b"x" * 500)
    big = tmp_path / "big.log"
    big.write_bytes(b"x" * 1001)
    argv = ["submit", "a@example.com", "Subject"] + [
        a.replace("{tmp}", str(tmp_path)).replace("{big}", str(big)) for a in extra
    ]
    err = fails_cleanly(capsys, argv)
    assert err.startswith("support-agent: error: ") and message in err
    assert not (tmp_path / "state" / "evidence").exists()


@pytest.mark.usefixtures("no_engine_calls")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "not-an-email", "S", "--body", "B"], "not a valid customer email"),
        (["submit", "a@example.com", "  ", "--body", "B"], "the subject is empty"),
        (["reply", "T 1", "hi"], "not a valid ticket id"),
        (["reply", "T-1", "  "], "the message is empty"),
    ],
)
def test_other_bad_input_fails_before_connecting(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in fails_cleanly(capsys, argv)


@pytest.mark.usefixtures("no_engine_calls")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "a@example.com", "S"], "one of the arguments --body --body-file is required"),
        (["submit", "a@example.com", "S", "--body", "B", "--body-file", "f"], "not allowed with"),
        (["submit", "a@example.com", "S", "--body", "B", "--reply-timeout", "0"], "more than 0"),
        (["submit", "a@example.com", "S", "--body", "B", "--reply-timeout", "x"], "not a number"),
        (["submit", "a@example.com", "S", "--body", "B", "--attach", "-rf"], "expected one"),
        (["show", "no such run!"], "neither a run id nor a ticket id"),
        (["watch", "../etc"], "neither a run id nor a ticket id"),
        (["tickets", "--limit", "0"], "must be at least 1"),
        (["tickets", "--since", "8d"], "at most 7d"),
        (["tickets", "--since", "yesterday"], "not a duration"),
        (["serve", "--port", "70000"], "not a port from 1 to 65535: '70000'"),
        (["serve", "--port", "0"], "not a port from 1 to 65535: '0'"),
    ],
)
def test_usage_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    err = expect_exit(capsys, argv)
    assert message in err and err.rstrip().endswith("(see --help)")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SUPPORT_AGENT_API_PORT", "abc", "configuration: api_port: Input should be a valid"),
        ("SUPPORT_AGENT_LLM", "gpt", "configuration: llm: Input should be 'claude' or"),
        ("HATCHET_CLIENT_EMBEDDED_GRPC_PORT", "99999", "less than or equal to 65535"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    err = fails_cleanly(capsys, ["tickets"])
    assert message in err and value not in err.partition(":")[2].replace(message, "")


@pytest.mark.parametrize("command", ["submit", "reply", "watch", "show", "tickets"])
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as raised:
        main([command, "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: support-agent {command}") and "exit status: 0" in out


# -- the engine check ------------------------------------------------------------------


def _fake_token(grpc: str, api: str) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": "707d0855-80ab-4e1f-a156-f1c4546cbf52", "server_url": api}
    return f"{part({'alg': 'ES256'})}.{part({**claims, 'grpc_broadcast_address': grpc})}.sig"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HATCHET_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv(HANDSHAKE_ENV, "")  # connect() sets it; restored afterwards
    monkeypatch.setenv("SUPPORT_AGENT_STATE_DIR", str(tmp_path))
    return tmp_path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_no_engine_is_one_line(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails_cleanly(capsys, ["submit", "a@example.com", "S", "--body", "B"], status=1)
    assert "no Hatchet engine is running" in err


def test_unreachable_engine_fails_fast_in_one_line(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grpc, api = f"127.0.0.1:{_closed_port()}", f"http://127.0.0.1:{_closed_port()}"
    (state_dir / "engine.json").write_text(
        json.dumps(
            {
                "token": _fake_token(grpc, api),
                "tenant_id": "707d0855-80ab-4e1f-a156-f1c4546cbf52",
                "grpc_address": grpc,
                "api_url": api,
                "pid": os.getpid(),
            }
        )
    )
    started = time.monotonic()
    err = fails_cleanly(capsys, ["submit", "a@example.com", "S", "--body", "B"], status=1)
    assert f"the Hatchet engine at {grpc}" in err
    assert time.monotonic() - started < commands.ENGINE_CHECK_SECONDS + 5


def test_a_store_that_is_down_is_one_line_and_stores_nothing(tmp_path: Path) -> None:
    import socket as sockets

    from pydantic import SecretStr

    from workflows.settings import EvidenceSettings

    with sockets.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = Settings(
        state_dir=tmp_path,
        evidence=EvidenceSettings(
            store="s3",
            s3_bucket="evidence",
            s3_endpoint_url=f"http://127.0.0.1:{closed}",
            s3_region="us-east-1",
            s3_access_key_id=SecretStr("k"),
            s3_secret_access_key=SecretStr("s"),
        ),
    )
    log = tmp_path / "app.log"
    log.write_bytes(b"ERROR boom\n")
    args = parse("submit", "a@example.com", "S", "--body", "B", "--attach", str(log))
    ticket = commands.build_ticket(args, io.StringIO())
    files = commands.load_attachments(args.attach, settings.evidence)
    with pytest.raises(commands.CommandError, match="the evidence store is unavailable: ") as err:
        commands.store_attachments(settings, ticket, files)
    assert "\n" not in str(err.value) and err.value.status == 1
