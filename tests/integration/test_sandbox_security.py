"""The sandbox's security boundary, against real Docker.

Each test runs hostile code and asserts three things: it was contained, the
result says clearly what happened, and no container of the test's ticket is
left behind. Never skipped under CI=true (see ``require_docker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from sandbox import (
    DockerSandbox,
    InputFile,
    InvalidInputError,
    SandboxConfig,
    reap_expired,
)
from sandbox import containers as sandbox_containers
from sandbox.naming import Labels, container_name
from tests.integration.conftest import RequestFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO_ROOT = Path(__file__).resolve().parents[2]

Cleanup = Callable[..., None]


async def test_no_network(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = textwrap.dedent(
        f"""
        import json, socket
        lines = open("/proc/net/dev").read().splitlines()[2:]
        names = [line.split(":")[0].strip() for line in lines]
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", {port}))
            connected = True
        except OSError as exc:
            connected = False
        print(json.dumps({{"interfaces": names, "connected": connected}}))
        """
    )
    try:
        result = await docker_sandbox.run(make_request(code))
        seen = json.loads(result.stdout)
        assert seen["interfaces"] == ["lo"]
        assert seen["connected"] is False
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever reached the host's listener
    finally:
        listener.close()
    assert result.exit_code == 0
    assert_cleaned_up()


async def test_fork_bomb_is_capped(
    docker_sandbox: DockerSandbox,
    sandbox_config: SandboxConfig,
    make_request: RequestFactory,
    assert_cleaned_up: Cleanup,
) -> None:
    code = textwrap.dedent(
        """
        import os, time
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError as exc:
            print("capped at", n, exc.errno)
        """
    )
    started = time.monotonic()
    result = await docker_sandbox.run(make_request(code))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("capped at")
    assert int(result.stdout.split()[2]) < sandbox_config.pids
    # The children were still sleeping: the supervisor killed them all.
    assert time.monotonic() - started < 10
    assert_cleaned_up()


async def test_bash_fork_bomb_is_killed(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    # The script returns at once and leaves the bomb running in the background.
    result = await docker_sandbox.run(
        make_request("bomb() { bomb | bomb & }; bomb; echo survived", language="bash", timeout=5)
    )
    assert not result.timed_out
    assert "survived" in result.stdout
    assert_cleaned_up()


async def test_memory_bomb_is_oom_killed(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    code = (
        "print('allocating', flush=True)\nblocks = []\n"
        "while True:\n    blocks.append(bytearray(8 * 1024 * 1024))\n"
    )
    result = await docker_sandbox.run(make_request(code))
    assert result.oom_killed is True
    assert result.exit_code == 137
    assert result.stdout == "allocating\n"  # the output until the kill is kept
    assert "OUT OF MEMORY" in result.summary()
    assert_cleaned_up()


async def test_disk_fill_hits_tmpfs_limits(
    docker_sandbox: DockerSandbox,
    sandbox_config: SandboxConfig,
    make_request: RequestFactory,
    assert_cleaned_up: Cleanup,
) -> None:
    code = textwrap.dedent(
        """
        import errno
        for path in ["/tmp/fill", "/work/fill", "/work/output/fill", "/var/tmp/fill"]:
            try:
                with open(path, "wb") as f:
                    while True:
                        f.write(b"x" * 1024 * 1024)
                        f.flush()
            except OSError as exc:
                print(path, errno.errorcode[exc.errno])
        """
    )
    result = await docker_sandbox.run(make_request(code))
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines == {
        "/tmp/fill": "ENOSPC",
        "/work/fill": "ENOSPC",
        "/work/output/fill": "ENOSPC",
        # The root filesystem is read-only, even where its modes allow writing (1777).
        "/var/tmp/fill": "EROFS",
    }
    [fill] = result.output_files
    assert fill.name == "fill"
    assert fill.size >= (sandbox_config.output_size_mb - 1) * 1024 * 1024
    assert fill.truncated and len(fill.text or "") == sandbox_config.max_output_file_bytes
    assert_cleaned_up()


async def test_stdout_flood_is_capped(
    docker_sandbox: DockerSandbox,
    sandbox_config: SandboxConfig,
    make_request: RequestFactory,
    assert_cleaned_up: Cleanup,
) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.stdout.write("START\\n")
        block = b"y" * (1024 * 1024)
        for _ in range(100):
            sys.stdout.buffer.write(block)
        sys.stdout.write("\\nEND\\n")
        """
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = await docker_sandbox.run(make_request(code, timeout=20))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    total = 100 * 1024 * 1024 + len("START\n\nEND\n")
    assert result.exit_code == 0
    assert result.stdout.startswith("START\n")
    assert result.stdout.endswith("\nEND\n")
    assert result.stdout_truncated_bytes == total - sandbox_config.stdout_limit_bytes
    assert f"{result.stdout_truncated_bytes} bytes of stdout dropped" in result.stdout
    assert grown_kib < 48 * 1024, "the worker must not buffer the flood"
    assert_cleaned_up()


async def test_infinite_loop_times_out(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    result = await docker_sandbox.run(
        make_request("print('spinning', flush=True)\nwhile True: pass", timeout=2)
    )
    assert result.timed_out is True
    assert result.exit_code is None
    assert 2 <= result.duration_seconds < 4
    assert result.stdout == "spinning\n"  # output before the kill is kept
    assert_cleaned_up(within=5)


async def test_the_code_cannot_signal_its_supervisor(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    """Pid 1 reports the run: gVisor, unlike Linux, does not protect a namespace's init."""
    code = textwrap.dedent(
        """
        import os, signal, sys
        print("before", flush=True)
        for sig in ("SIGKILL", "SIGTERM", "SIGINT", "SIGALRM", "SIGSTOP"):
            try:
                os.kill(1, getattr(signal, sig))
                print(sig, "delivered")
            except PermissionError:
                print(sig, "refused")
        try:
            os.close(os.pidfd_open(1))
            print("pidfd opened")
        except PermissionError:
            print("pidfd refused")
        proc = os.open("/proc/1", os.O_DIRECTORY)  # a pidfd too, without pidfd_open
        try:
            signal.pidfd_send_signal(proc, signal.SIGALRM)
            print("pidfd-signal delivered")
        except PermissionError:
            print("pidfd-signal refused")
        sys.stdout.flush()
        """
    )
    result = await docker_sandbox.run(make_request(code, timeout=10))
    assert result.exit_code == 0, result
    assert result.stdout.split() == [
        "before", *(w for sig in ("SIGKILL", "SIGTERM", "SIGINT", "SIGALRM", "SIGSTOP")
                    for w in (sig, "refused")), "pidfd", "refused", "pidfd-signal", "refused",
    ]  # fmt: skip
    assert_cleaned_up()


async def test_bashs_kill_0_idiom_ends_the_code_not_the_supervisor(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    """`trap 'kill 0' EXIT` signals the code's process group: its own session, not pid 1's."""
    code = "trap 'kill 0' EXIT\nsleep 30 &\necho checked"
    result = await docker_sandbox.run(make_request(code, language="bash", timeout=10))
    assert result.stdout == "checked\n"
    assert result.exit_code == 128 + signal.SIGTERM  # bash killed itself with its group
    assert not result.timed_out
    assert_cleaned_up()


async def test_sigterm_ignoring_processes_are_killed(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    code = textwrap.dedent(
        """
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()  # a detached child that also ignores SIGTERM
            while True:
                time.sleep(0.1)
        while True:
            time.sleep(0.1)
        """
    )
    result = await docker_sandbox.run(make_request(code, timeout=2))
    assert result.timed_out is True
    assert_cleaned_up(within=5)


async def test_host_environment_and_secrets_are_invisible(
    docker_sandbox: DockerSandbox,
    runtime: str,
    make_request: RequestFactory,
    assert_cleaned_up: Cleanup,
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    os.environ["SUPPORT_AGENT_TEST_SECRET"] = secret
    code = textwrap.dedent(
        """
        import ctypes, json, os
        seen = {"env": dict(os.environ), "files": {}}
        libc = ctypes.CDLL(None, use_errno=True)
        seen["ptrace_attach"] = [libc.ptrace(16, 1, 0, 0), ctypes.get_errno()]
        for path in ["/proc/1/environ", "/proc/self/environ", "/proc/1/cmdline", "/proc/1/mem"]:
            try:
                with open(path, "rb") as f:
                    seen["files"][path] = f.read(4096).decode("latin-1")
            except OSError as exc:
                seen["files"][path] = type(exc).__name__
        print(json.dumps(seen))
        """
    )
    try:
        result = await docker_sandbox.run(make_request(code))
    finally:
        del os.environ["SUPPORT_AGENT_TEST_SECRET"]
    assert secret not in result.stdout + result.stderr
    seen = json.loads(result.stdout)
    assert set(seen["env"]) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "HOSTNAME",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
    }
    # The supervisor (pid 1) is not dumpable: its memory is closed and it cannot
    # be traced, so the code cannot forge its report.
    assert seen["files"]["/proc/1/mem"] == "PermissionError"
    assert seen["ptrace_attach"] == [-1, 1]  # EPERM
    if runtime == "runsc":
        # gVisor (2022-12-19) does not close /proc/<pid>/environ of a non-dumpable
        # process; pid 1's environment is the sandbox's own, nothing of the host's.
        environ = seen["files"]["/proc/1/environ"].split("\x00")
        assert {v.partition("=")[0] for v in environ if v} <= set(seen["env"])
    else:
        assert seen["files"]["/proc/1/environ"] == "PermissionError"
    assert_cleaned_up()


async def test_attachments_are_read_only(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    code = textwrap.dedent(
        """
        import json, os, stat
        out = {}
        for name, action in [
            ("write", lambda: open("/work/input/data.csv", "a").write("x")),
            ("chmod", lambda: os.chmod("/work/input/data.csv", 0o666)),
            ("unlink", lambda: os.unlink("/work/input/data.csv")),
            ("rename", lambda: os.rename("/work/input/data.csv", "/work/input/other")),
            ("create", lambda: open("/work/input/new", "w")),
            ("rmdir", lambda: os.rmdir("/work/input")),
        ]:
            try:
                action()
                out[name] = "allowed"
            except OSError as exc:
                out[name] = type(exc).__name__
        st = os.stat("/work/input/data.csv")
        dir_st = os.stat("/work/input")
        out["file"] = [st.st_uid, oct(stat.S_IMODE(st.st_mode))]
        out["dir"] = [dir_st.st_uid, oct(stat.S_IMODE(dir_st.st_mode))]
        out["content"] = open("/work/input/data.csv").read()
        print(json.dumps(out))
        """
    )
    result = await docker_sandbox.run(
        make_request(code, files=[InputFile(name="data.csv", data=b"a,b\n1,2\n")])
    )
    seen = json.loads(result.stdout)
    for action in ("write", "chmod", "unlink", "rename", "create", "rmdir"):
        assert seen[action] in ("PermissionError", "OSError"), (action, seen)
    assert seen["file"] == [0, "0o444"]
    assert seen["dir"] == [0, "0o555"]
    assert seen["content"] == "a,b\n1,2\n"
    assert_cleaned_up()


async def test_privilege_tricks_fail(
    docker_sandbox: DockerSandbox,
    runtime: str,
    make_request: RequestFactory,
    assert_cleaned_up: Cleanup,
) -> None:
    code = textwrap.dedent(
        """
        import ctypes, json, os, socket, subprocess
        out = {}
        def attempt(name, fn):
            try:
                fn()
                out[name] = "allowed"
            except (OSError, subprocess.CalledProcessError) as exc:
                out[name] = type(exc).__name__
        def run(*cmd):
            subprocess.run(cmd, check=True, capture_output=True)
        attempt("setuid", lambda: os.setuid(0))
        attempt("chown", lambda: os.chown("/work/output", 0, 0))
        attempt("mount", lambda: run("mount", "-t", "tmpfs", "none", "/tmp"))
        attempt("unshare", lambda: run("unshare", "--user", "--map-root-user", "true"))
        raw = (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        attempt("raw_socket", lambda: socket.socket(*raw))
        attempt("write_sys", lambda: open("/proc/sys/kernel/hostname", "w").write("x"))
        open("/tmp/suid", "w").close()
        os.chmod("/tmp/suid", 0o4755)
        out["tmp_nosuid"] = "nosuid" in [l for l in open("/proc/mounts") if " /tmp " in l][0]
        with open("/bin/true", "rb") as src, open("/tmp/true", "wb") as dst:
            dst.write(src.read())
        os.chmod("/tmp/true", 0o755)
        attempt("exec_tmp", lambda: run("/tmp/true"))
        find = ["find", "/", "-xdev", "-perm", "/6000", "-type", "f"]
        out["setuid_files"] = subprocess.run(find, capture_output=True, text=True).stdout.split()
        status = dict(l.split(":", 1) for l in open("/proc/self/status"))
        caps = ("CapPrm", "CapEff", "CapBnd", "CapAmb")
        out["caps"] = [status.get(k, "absent").strip() for k in caps]
        out["status_no_new_privs"] = status.get("NoNewPrivs", "absent").strip()
        # What the kernel the code runs on holds for it: PR_GET_NO_NEW_PRIVS (39).
        out["no_new_privs"] = ctypes.CDLL(None, use_errno=True).prctl(39, 0, 0, 0, 0)
        out["uid"] = os.getuid()
        out["oom_score_adj"] = open("/proc/self/oom_score_adj").read().strip()
        print(json.dumps(out))
        """
    )
    result = await docker_sandbox.run(make_request(code))
    seen = json.loads(result.stdout)
    for trick in ("setuid", "chown", "mount", "unshare", "raw_socket", "write_sys"):
        assert seen[trick] != "allowed", (trick, seen)
    # Nothing written at run time can be executed, let alone gain privileges by
    # it: noexec; nosuid (gVisor 2022-12-19 does not list it in /proc/mounts,
    # and no_new_privs, set for every process, keeps setuid bits inert there).
    assert seen["exec_tmp"] == "PermissionError"
    assert seen["tmp_nosuid"] is (runtime != "runsc")
    assert seen["setuid_files"] == []
    # gVisor (2022-12-19) leaves CapAmb and NoNewPrivs out of /proc/self/status;
    # its kernel holds both all the same (and sets no_new_privs for every process).
    absent_here = "absent" if runtime == "runsc" else "0000000000000000"
    assert seen["caps"] == ["0000000000000000"] * 3 + [absent_here]
    assert seen["no_new_privs"] == 1
    assert seen["status_no_new_privs"] == ("absent" if runtime == "runsc" else "1")
    assert seen["uid"] == 10001
    assert seen["oom_score_adj"] == "1000"  # the OOM killer takes the code first
    assert_cleaned_up()


async def test_host_information_is_masked(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    # Docker's default masked paths; each must be absent, empty or unreadable.
    masked = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
        "/proc/acpi",
        "/proc/scsi",
        "/sys/firmware",
    ]
    code = textwrap.dedent(
        f"""
        import json, os
        out = {{}}
        for path in {masked!r}:
            try:
                if os.path.isdir(path):
                    out[path] = "entries" if os.listdir(path) else "empty"
                else:
                    with open(path, "rb") as f:
                        out[path] = "content" if f.read(64) else "empty"
            except OSError as exc:
                out[path] = type(exc).__name__
        for path in ["/proc/sysrq-trigger", "/sys/kernel/uevent_helper"]:
            try:
                with open(path, "w") as f:
                    f.write("x")
                out[path] = "written"
            except OSError as exc:
                out[path] = type(exc).__name__
        print(json.dumps(out))
        """
    )
    result = await docker_sandbox.run(make_request(code))
    seen = json.loads(result.stdout)
    for path in masked:
        assert seen[path] in ("FileNotFoundError", "PermissionError", "empty"), (path, seen[path])
    assert seen["/proc/sysrq-trigger"] != "written"
    assert seen["/sys/kernel/uevent_helper"] != "written"
    assert_cleaned_up()


async def test_very_many_output_files_are_capped(
    docker_sandbox: DockerSandbox,
    sandbox_config: SandboxConfig,
    make_request: RequestFactory,
    assert_cleaned_up: Cleanup,
) -> None:
    code = textwrap.dedent(
        """
        import os
        os.makedirs("/work/output/deep/er", exist_ok=True)
        os.symlink("/etc/passwd", "/work/output/link")
        os.mkfifo("/work/output/fifo")
        made = 0
        try:
            for i in range(5000):
                with open(f"/work/output/f{i:04d}.txt", "w") as f:
                    f.write(str(i))
                made += 1
        except OSError:
            pass
        print(made)
        """
    )
    result = await docker_sandbox.run(make_request(code))
    assert result.exit_code == 0, result.stderr
    assert int(result.stdout) < 5000  # the tmpfs inode cap stopped it
    assert len(result.output_files) == sandbox_config.max_output_files
    assert result.output_files_omitted > 0
    assert all(f.text is not None and f.name.startswith("f") for f in result.output_files)
    assert any("not kept" in note for note in result.notes)
    assert_cleaned_up()


async def test_binary_and_invalid_utf8_output(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        sys.stdout.buffer.write(b"ok \\xff\\xfe\\x00 end")
        sys.stderr.buffer.write(b"\\xc3(")
        open("/work/output/blob.bin", "wb").write(bytes(range(256)))
        open(os.fsencode("/work/output/bad-\\udcff.txt"), "w").write("fine")
        """
    )
    result = await docker_sandbox.run(make_request(code))
    assert result.stdout == "ok \ufffd\ufffd\x00 end"
    assert result.stdout_invalid_utf8 and result.stderr_invalid_utf8
    assert any("not valid UTF-8" in note for note in result.notes)
    files = {f.name: f for f in result.output_files}
    assert files["blob.bin"].text is None and files["blob.bin"].base64
    assert files["bad-\ufffd.txt"].text == "fine"
    json.dumps(result.model_dump(mode="json"))
    assert_cleaned_up()


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "",
        "/etc/passwd",
        "../escape",
        "a//b",
        "a/./b",
        "a/../../b",
        "a\\b",
        "nul\x00byte",
        "x" * 300,
        "bad-\udcff",
        "line\nbreak",
        "rtl\u202etxt.exe",
        " padded ",
    ],
)
async def test_hostile_attachment_names_are_rejected(
    docker_sandbox: DockerSandbox,
    make_request: RequestFactory,
    leftovers: Callable[[], list[str]],
    name: str,
) -> None:
    with pytest.raises(InvalidInputError):
        await docker_sandbox.run(make_request("print(1)", files=[InputFile(name=name, data=b"x")]))
    assert leftovers() == []  # rejected before any container existed


async def test_duplicate_attachment_names_are_rejected(
    docker_sandbox: DockerSandbox, make_request: RequestFactory, leftovers: Callable[[], list[str]]
) -> None:
    files = [
        InputFile(name="caf\u00e9.txt", data=b"1"),
        InputFile(name="cafe\u0301.txt", data=b"2"),
    ]
    with pytest.raises(InvalidInputError, match="duplicate"):
        await docker_sandbox.run(make_request("print(1)", files=files))
    assert leftovers() == []


async def test_warm_pool_execution(
    pooled_sandbox: DockerSandbox, make_request: RequestFactory, assert_cleaned_up: Cleanup
) -> None:
    result = await pooled_sandbox.run(
        make_request(
            "print(open('/work/input/in.txt').read())\n"
            "open('/work/output/o.txt', 'w').write('out')",
            files=[InputFile(name="in.txt", data=b"from the host")],
        )
    )
    assert result.from_pool is True
    assert result.stdout == "from the host\n"
    assert [f.text for f in result.output_files] == ["out"]
    # Timeouts hold for pool containers too.
    assert await pooled_sandbox.pool.wait_ready(within_seconds=30)
    spun = await pooled_sandbox.run(make_request("while True: pass", step_id="spin", timeout=2))
    assert spun.from_pool and spun.timed_out
    assert_cleaned_up(within=5)


async def test_retry_removes_the_earlier_attempts_leftover(
    docker_client: docker.DockerClient,
    docker_sandbox: DockerSandbox,
    sandbox_config: SandboxConfig,
    make_request: RequestFactory,
    ticket_id: str,
    assert_cleaned_up: Cleanup,
) -> None:
    request = make_request("print('second attempt')")
    name = container_name(request.ticket_id, request.run_id, request.step_id)
    # The first attempt's container, as a crashed worker would have left it.
    leftover = sandbox_containers.create_container(
        docker_client,
        sandbox_config,
        name=name,
        labels=Labels(sandbox_config.label_prefix).for_container(
            time.time() + 60, (ticket_id, "run-1", "step")
        ),
        idle_seconds=60,
        input_volume=False,
    )
    docker_client.api.start(leftover)
    result = await docker_sandbox.run(request)
    assert result.stdout == "second attempt\n"
    assert result.container_name == name
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(leftover)
    assert_cleaned_up()


def started_sandbox_container(
    client: docker.DockerClient,
    config: SandboxConfig,
    ticket_id: str,
    step: str,
    *,
    expires_at: float,
    input_volume: bool = False,
) -> str:
    """A started sandbox container of the test's ticket, labelled to expire at ``expires_at``."""
    container = sandbox_containers.create_container(
        client,
        config,
        name=container_name(ticket_id, "run-1", step),
        labels=Labels(config.label_prefix).for_container(expires_at, (ticket_id, "run-1", step)),
        idle_seconds=60,
        input_volume=input_volume,
    )
    client.api.start(container)
    return container


async def test_reaper_removes_expired_containers(
    docker_client: docker.DockerClient,
    sandbox_config: SandboxConfig,
    ticket_id: str,
    leftovers: Callable[[], list[str]],
) -> None:
    def make(expires_at: float, step: str) -> str:
        return started_sandbox_container(
            docker_client, sandbox_config, ticket_id, step, expires_at=expires_at
        )

    expired = make(time.time() - 10, "old")
    current = make(time.time() + 60, "new")
    try:
        assert await reap_expired(docker_client) >= 1
        assert leftovers() == [current]
        with pytest.raises(docker.errors.NotFound):
            docker_client.api.inspect_container(expired)
    finally:
        sandbox_containers.remove_container(docker_client, current)


async def test_reaper_removes_stray_input_volumes_but_not_one_in_use(
    docker_client: docker.DockerClient,
    sandbox_config: SandboxConfig,
    ticket_id: str,
    leftovers: Callable[[], list[str]],
) -> None:
    """Docker 20.10's volume prune passes over these tmpfs volumes: each is removed itself."""
    labels = Labels(sandbox_config.label_prefix)
    mount = sandbox_containers.host_config(docker_client, sandbox_config, True)["Mounts"][0]
    stray = docker_client.api.create_volume(
        driver="local",
        driver_opts=mount["VolumeOptions"]["DriverConfig"]["Options"],
        labels={labels.marker: "1"},
    )["Name"]
    in_use = started_sandbox_container(
        docker_client, sandbox_config, ticket_id, "busy",
        expires_at=time.time() + 60, input_volume=True,
    )  # fmt: skip
    try:
        await reap_expired(docker_client)
        with pytest.raises(docker.errors.NotFound):
            docker_client.api.inspect_volume(stray)
        mounted = docker_client.api.inspect_container(in_use)["Mounts"]
        docker_client.api.inspect_volume(mounted[0]["Name"])  # still there: in use
        assert leftovers() == [in_use]
    finally:
        sandbox_containers.remove_container(docker_client, in_use)
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_volume(stray)


CHILD = """
import asyncio, sys
sys.path.insert(0, {root!r})
from sandbox import DockerSandbox, ExecutionRequest, SandboxConfig
config = SandboxConfig.model_validate_json({config!r})
request = ExecutionRequest(
    code="while True: pass", timeout_seconds={timeout}, ticket_id={ticket!r}, run_id="r",
    step_id="s",
)
asyncio.run(DockerSandbox(config).run(request))
"""


async def test_sigkill_of_the_caller_leaves_nothing_running(
    docker_client: docker.DockerClient,
    make_sandbox_config: Callable[..., SandboxConfig],
    ticket_id: str,
    leftovers: Callable[[], list[str]],
) -> None:
    config: SandboxConfig = make_sandbox_config(kill_grace_seconds=2, startup_grace_seconds=5)
    timeout = 3.0
    script = CHILD.format(
        root=str(REPO_ROOT), config=config.model_dump_json(), timeout=timeout, ticket=ticket_id
    )
    child = subprocess.Popen([sys.executable, "-c", script])  # noqa: ASYNC220 (returns at once)
    try:
        deadline = time.monotonic() + 20
        while not leftovers():
            assert time.monotonic() < deadline, "the child never started a container"
            assert child.poll() is None, "the child exited early"
            await asyncio.sleep(0.05)
        [container] = leftovers()
        started = time.monotonic()
        await asyncio.sleep(0.5)  # let the code start spinning
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    # The container's own deadline: the timeout plus the grace (after the request).
    limit = started + timeout + config.kill_grace_seconds + 3
    while leftovers():
        assert time.monotonic() < limit, "the container outlived its deadline"
        await asyncio.sleep(0.2)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(container)
    # Nothing is left for the reaper either (and it finds nothing of ours).
    await reap_expired(docker_client)
    assert leftovers() == []
