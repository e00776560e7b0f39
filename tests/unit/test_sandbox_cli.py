"""`support-agent sandbox run`: argument handling and failures, without Docker."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli.sandbox_cmd import add_sandbox_parser, render, run_sandbox_command
from sandbox import ExecutionResult, OutputFile, SandboxConfig


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="support-agent")
    add_sandbox_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sandbox", *argv])


def test_arguments() -> None:
    args = parse(
        "run", "x.sh", "--attach", "a.csv", "--attach", "b.log", "--timeout", "5", "--json"
    )
    assert (args.command, args.sandbox_command) == ("sandbox", "run")
    assert args.file == Path("x.sh") and args.attach == [Path("a.csv"), Path("b.log")]
    assert args.timeout == 5 and args.json and args.language is None


def test_unreadable_file_is_a_clear_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_sandbox_command(parse("run", str(tmp_path / "missing.py")), SandboxConfig())
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("support-agent sandbox: cannot read") and err.count("\n") == 1


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


@pytest.mark.usefixtures("no_docker")
@pytest.mark.parametrize(
    ("filename", "attach", "status", "message"),
    [
        # A hostile attachment name is refused before Docker is even contacted.
        ("s.py", "bad\nname", 2, "control or invisible"),
        ("s.sh", None, 1, "cannot reach Docker"),
    ],
)
def test_clear_one_line_failures(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    filename: str,
    attach: str | None,
    status: int,
    message: str,
) -> None:
    script = tmp_path / filename
    script.write_text("print(1)")
    argv = ["run", str(script)]
    if attach is not None:
        (tmp_path / attach).write_text("x")
        argv += ["--attach", str(tmp_path / attach)]
    assert run_sandbox_command(parse(*argv), SandboxConfig()) == status
    err = capsys.readouterr().err
    assert err.startswith("support-agent sandbox: ") and message in err
    assert err.count("\n") == 1


def test_render() -> None:
    result = ExecutionResult(
        exit_code=None,
        stdout="out\n",
        stderr="",
        duration_seconds=2.0,
        timed_out=True,
        output_files=[OutputFile(name="r.bin", size=9, truncated=True, base64="AA==")],
        container_name="sa-x",
        runtime="runsc",
        kernel="4.4.0",
        notes=["a note"],
    )
    text = render(result)
    assert "exit code: None" in text and "flags: timed out" in text
    assert "note: a note" in text and "(empty)" in text
    assert "runtime: runsc (kernel 4.4.0)" in text
    assert "r.bin (9 bytes, binary, truncated)" in text
