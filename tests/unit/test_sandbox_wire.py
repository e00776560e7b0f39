"""The supervisor protocol: request encoding, report parsing, input archives.

Only the supervisor's pure pieces run here: its ``main`` kills every process
it can signal, so it refuses to run anywhere but as a container's pid 1.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from sandbox import InputFile, supervisor
from sandbox.archive import input_archive
from sandbox.capture import FileCollector
from sandbox.wire import OutputCaps, ReportParser, encode_request

CAPS = OutputCaps(max_files=3, max_file_bytes=100, max_total_bytes=1000)


def report(*lines: bytes) -> bytes:
    return b"".join(lines)


def parse(data: bytes, chunk: int = 1 << 20, files: FileCollector | None = None) -> ReportParser:
    parser = ReportParser(files or FileCollector(3, 100, 1000))
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])
    return parser


def test_request_round_trips_through_the_supervisor_reader() -> None:
    code = "print('h\u00e9llo')\n".encode()
    read, write = os.pipe()
    os.write(write, encode_request(b"abc123", "python", 2.5, code, CAPS))
    os.close(write)
    request = supervisor._read_request(read)
    os.close(read)
    assert request is not None
    assert (request.nonce, request.language, request.timeout) == (b"abc123", "python", 2.5)
    assert (request.max_files, request.max_file_bytes, request.max_total_bytes) == (3, 100, 1000)
    assert request.code == code


def test_supervisor_reader_returns_none_at_end_of_input() -> None:
    read, write = os.pipe()
    os.close(write)
    assert supervisor._read_request(read) is None
    os.close(read)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_report_is_parsed_whatever_the_chunking(chunk: int) -> None:
    data = report(
        b"exit 137\n",
        b"timed_out 0\n",
        b"oom_kills 1\n",
        b"duration_ms 1500\n",
        b"kernel 4.4.0\n",
        b"file 5 3 3\n",
        b"a.txtabc",
        b"file 3 0 0\n",
        b"dir",
        b"omitted 2\n",
        b"end\n",
    )
    parser = parse(data, chunk)
    assert parser.done and parser.error is None
    assert (parser.exit_code, parser.timed_out, parser.oom_kills) == (137, False, 1)
    assert parser.duration_seconds == 1.5
    assert parser.kernel == "4.4.0"
    assert [(f.name, f.data) for f in parser.files.files] == [(b"a.txt", b"abc"), (b"dir", b"")]
    assert parser.files.omitted == 2


def test_report_cannot_exceed_the_hosts_caps() -> None:
    files = FileCollector(max_files=1, max_file_bytes=4, max_total_bytes=4)
    data = report(
        b"exit 0\n",
        b"file 1 1000 1000\n",
        b"x" + b"y" * 1000,
        b"file 1 1 1\n",
        b"zq",
        b"end\n",
    )
    parser = parse(data, 7, files)
    assert parser.done
    assert [(f.name, f.size, f.data) for f in files.files] == [(b"x", 1000, b"yyyy")]
    assert files.omitted == 1


@pytest.mark.parametrize(
    "garbage",
    [b"exit lots\n", b"file 0 1 1\n", b"file -1 1 1\n", b"nonsense\n", b"x" * 10_000],
)
def test_malformed_reports_stop_with_an_error(garbage: bytes) -> None:
    parser = parse(b"exit 0\n" + garbage + b"end\n")
    assert parser.error and not parser.done


def test_timed_out_report_has_no_exit_code() -> None:
    parser = parse(b"exit none\ntimed_out 1\nend\n")
    assert parser.exit_code is None and parser.timed_out


def test_supervisor_collects_output_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "OUTPUT_DIR", str(tmp_path))
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"\x00" * 500)
    (tmp_path / "link").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "fifo")
    request = supervisor.Request(b"SANDBOX/1 n python 1000 0 10 100 1000", b"")
    files, omitted = supervisor._output_files(request)
    assert files == [(b"a.txt", 5, b"alpha"), (b"sub/b.bin", 500, b"\x00" * 100)]
    assert omitted == 2  # the link and the fifo are never read


def test_supervisor_refuses_to_run_outside_a_container() -> None:
    with pytest.raises(SystemExit, match="not pid 1"):
        supervisor.main(["-c", "1", "1"])


def test_input_archive_holds_only_read_only_root_files() -> None:
    files = [InputFile(name="caf\u00e9 1.csv", data=b"a,b\n"), InputFile(name="empty", data=b"")]
    with tarfile.open(fileobj=io.BytesIO(b"".join(input_archive(files))), mode="r:") as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["caf\u00e9 1.csv", "empty"]
        for member in members:
            assert member.isreg() and member.mode == 0o444 and (member.uid, member.gid) == (0, 0)
        extracted = archive.extractfile(members[0])
        assert extracted is not None and extracted.read() == b"a,b\n"


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="x86_64/aarch64")
def test_the_supervisors_seccomp_filter_forbids_new_namespaces_only() -> None:
    """Installed in a forked child of the test (it cannot be removed again)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: harden, try things, report, leave
        try:
            import ctypes
            import subprocess

            os.close(read)
            supervisor._harden()
            libc = ctypes.CDLL(None, use_errno=True)

            def errno_of(result: int) -> int:
                return ctypes.get_errno() if result == -1 else 0

            seen = [
                errno_of(libc.unshare(0x10000000)),  # CLONE_NEWUSER: EPERM
                errno_of(libc.unshare(0x00020000)),  # CLONE_NEWNS: EPERM
                errno_of(libc.syscall(435, 0, 0)),  # clone3: ENOSYS (C libraries fall back)
                os.waitstatus_to_exitcode(os.system("exit 7")),  # posix_spawn still works
                subprocess.run(["true"]).returncode,  # and fork/exec
            ]
            os.write(write, repr(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == b"[1, 1, 38, 7, 0]"
