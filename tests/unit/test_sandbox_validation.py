"""Attachment names and request limits, checked before any container exists."""

from __future__ import annotations

import pytest

from sandbox import ExecutionRequest, InputFile, InvalidInputError, SandboxConfig
from sandbox.validation import prepare_request, validate_input_name

CONFIG = SandboxConfig(
    max_input_files=3,
    max_input_file_bytes=10,
    max_input_total_bytes=15,
    max_code_bytes=50,
    timeout_seconds=30,
    max_timeout_seconds=60,
)


def request(
    *files: InputFile, code: str = "print(1)", timeout: float | None = None
) -> ExecutionRequest:
    return ExecutionRequest(
        code=code,
        files=list(files),
        timeout_seconds=timeout,
        ticket_id="t",
        run_id="r",
        step_id="s",
    )


@pytest.mark.parametrize(
    "name",
    [
        "report.csv",
        "data 2024-01.json",
        "caf\u00e9.txt",
        "\u65e5\u672c\u8a9e.log",
        ".hidden",
        "...",
        "-dash-first",
        "x" * 128,
    ],
)
def test_ordinary_names_pass(name: str) -> None:
    validate_input_name(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("..", "relative path component"),
        (".", "relative path component"),
        ("/etc/passwd", "absolute path"),
        ("\\windows", "absolute path"),
        ("../up", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("nul\x00", "NUL"),
        ("x" * 129, "longer than 128 bytes"),
        ("\u00e9" * 65, "longer than 128 bytes"),  # 130 bytes in UTF-8
        ("bad\udcff", "not valid UTF-8"),
        ("tab\there", "control or invisible"),
        ("new\nline", "control or invisible"),
        ("rtl\u202egnp.exe", "control or invisible"),
        ("zero\u200bwidth", "control or invisible"),
        ("para\u2029sep", "control or invisible"),
        (" lead", "whitespace"),
        ("trail ", "whitespace"),
        ("   ", "whitespace"),
    ],
)
def test_hostile_names_are_refused_with_the_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        validate_input_name(name)


def test_error_message_is_one_safe_line() -> None:
    with pytest.raises(InvalidInputError) as caught:
        validate_input_name("evil\n\x1b[31mred/../x")
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message


def test_duplicates_including_unicode_normalization() -> None:
    with pytest.raises(InvalidInputError, match="duplicate"):
        prepare_request(
            request(InputFile(name="a", data=b""), InputFile(name="a", data=b"")), CONFIG
        )
    with pytest.raises(InvalidInputError, match="duplicate"):
        prepare_request(
            request(InputFile(name="caf\u00e9", data=b""), InputFile(name="cafe\u0301", data=b"")),
            CONFIG,
        )


def test_size_and_count_limits() -> None:
    with pytest.raises(InvalidInputError, match="limit is 3"):
        prepare_request(request(*(InputFile(name=f"f{i}", data=b"") for i in range(4))), CONFIG)
    with pytest.raises(InvalidInputError, match="11 bytes"):
        prepare_request(request(InputFile(name="big", data=b"x" * 11)), CONFIG)
    with pytest.raises(InvalidInputError, match="total 20 bytes"):
        prepare_request(
            request(InputFile(name="a", data=b"x" * 10), InputFile(name="b", data=b"x" * 10)),
            CONFIG,
        )
    with pytest.raises(InvalidInputError, match="code is 51 bytes"):
        prepare_request(request(code="x" * 51), CONFIG)
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        prepare_request(request(code="\udcff"), CONFIG)


def test_timeout_defaults_and_is_capped() -> None:
    assert prepare_request(request(), CONFIG).timeout == 30
    assert prepare_request(request(timeout=5), CONFIG).timeout == 5
    assert prepare_request(request(timeout=500), CONFIG).timeout == 60


def test_prepared_request_carries_encoded_code() -> None:
    prepared = prepare_request(
        request(InputFile(name="a", data=b"1"), code="print('\u00e9')"), CONFIG
    )
    assert prepared.code == "print('\u00e9')".encode()
    assert prepared.language == "python"
    assert [f.name for f in prepared.files] == ["a"]
