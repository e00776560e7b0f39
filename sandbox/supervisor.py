"""The sandbox's pid 1: runs one piece of code inside the container and reports back.

This file is executed *inside* the sandbox container (``python3 -I -S -c <this
source>``); the host only imports it for the protocol constants below. It runs
as the container's first process, so:

* it is the container's own deadline: it exits (and with it every process in
  the container) at the request's timeout plus a grace, even when the host
  process that started it has died;
* it waits for exactly one request on stdin, so a pre-started (warm pool)
  container and a freshly created one behave the same;
* the code writes to pipes of the container's own kernel, which the supervisor
  copies to the container's stdout and stderr (``Relay``), so output reaches
  the host whole under every runtime;
* after the code exits it kills every other process in the container, then
  writes a report (exit status, timing, the files in the output folder) after a
  per-request random marker, so the host knows where the code's output ends
  without waiting for the container to stop.

Start-up time is part of every execution, so it imports only modules that are
built in or frozen (no json, subprocess, signal or typing: those pull in
``re`` and ``enum`` and cost ~10 ms). It has exactly the code's privileges; it
makes itself non-dumpable so the code (same uid) cannot ptrace it, read its
memory or forge its report; it installs no signal handler the code could
trigger except the watchdog's, which can only end the container sooner; and
the code starts with oom_score_adj 1000, so the OOM killer takes the code and
not the supervisor that has to report it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # builtin; `signal` would import enum
import os
import sys
import time

# Protocol, shared with the host (sandbox/wire.py imports these).
REQUEST_MAGIC = b"SANDBOX/1"
MARKER_PREFIX = b"\x00\x1esandbox-report:"
WORKDIR = "/work"
OUTPUT_DIR = "/work/output"
INTERPRETERS = {"python": ("/usr/bin/python3", "main.py"), "bash": ("/bin/bash", "main.sh")}
MAX_HEADER_BYTES = 512
MAX_SCAN_DEPTH = 16

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")


def marker(nonce: bytes) -> bytes:
    """The bytes that separate the code's output from the supervisor's report."""
    return MARKER_PREFIX + nonce + b"\n"


class Request:
    """One execution, as sent by the host on stdin."""

    def __init__(self, header: bytes, code: bytes) -> None:
        fields = header.split()
        if len(fields) != 8 or fields[0] != REQUEST_MAGIC:
            raise ValueError("malformed request header")
        self.nonce = fields[1]
        self.language = fields[2].decode()
        self.timeout = int(fields[3]) / 1000
        self.max_files = int(fields[5])
        self.max_file_bytes = int(fields[6])
        self.max_total_bytes = int(fields[7])
        self.code = code


def _exit_now(*_: object) -> None:
    # The watchdog: pid 1 leaving takes every process of the container with it.
    os._exit(3)


def _arm_watchdog(seconds: float) -> None:
    _signal.signal(_signal.SIGALRM, _exit_now)
    _signal.setitimer(_signal.ITIMER_REAL, max(seconds, 0.001))


# The seccomp filter (classic BPF) every process of the container runs under,
# whatever the runtime: no new namespaces. Docker's own profile says the same
# under runc, but gVisor does not apply it (and gVisor 2022-12-19, asked to
# with --oci-seccomp, turns clone3 into EPERM, which breaks posix_spawn and
# so system() and popen()).
_SECCOMP_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# clone, unshare, setns, clone3
_SECCOMP_NR = {"x86_64": (56, 272, 308, 435), "aarch64": (220, 97, 268, 435)}
# What can signal a process by pid: kill, tkill, tgkill, rt_sigqueueinfo,
# rt_tgsigqueueinfo, pidfd_open. None of them may name pid 1, the supervisor:
# under runc the kernel protects a namespace's init from signals it has no
# handler for, but gVisor does not, and code that kills its supervisor
# leaves no report (its output lost, the run retried as the sandbox's failure).
_SIGNAL_NR = {
    "x86_64": (62, 200, 234, 129, 297, 434),
    "aarch64": (129, 130, 131, 138, 240, 434),
}
_PIDFD_SEND_SIGNAL = 424  # the same number on both
_CLONE_NEW_FLAGS = 0x7E020080  # CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET,TIME}
_EPERM, _ENOSYS = 1, 38


def seccomp_program(machine: str) -> bytes:
    """The filter for this machine's architecture, as struct sock_filter entries."""
    clone, unshare, setns, clone3 = _SECCOMP_NR[machine]
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    # (code, jump if true, jump if false, k); jumps name the entry they go to.
    program: list[tuple[int, str | int, str | int, int]] = [
        (ld, 0, 0, 4),  # the system call's architecture
        (jeq, 0, "enosys", _SECCOMP_ARCH[machine]),
        (ld, 0, 0, 0),  # its number
        (jge, "enosys", 0, 0x40000000),  # x32 numbers
        *((jeq, "signal", 0, nr) for nr in _SIGNAL_NR[machine]),
        # pidfd_send_signal takes a pidfd, which open("/proc/1") also gives: refused whole.
        (jeq, "eperm", 0, _PIDFD_SEND_SIGNAL),
        (jeq, "eperm", 0, unshare),
        (jeq, "eperm", 0, setns),
        (jeq, "enosys", 0, clone3),  # C libraries fall back to clone, checked below
        (jeq, 0, "allow", clone),
        (ld, 0, 0, 16),  # clone's flags (low half of the first argument)
        (jset, "eperm", "allow", _CLONE_NEW_FLAGS),
        (ld, 0, 0, 16),  # "signal": the pid signalled (low half of the first argument)
        (jeq, "eperm", "allow", 1),
        (ret, 0, 0, allow),
        (ret, 0, 0, errno | _EPERM),
        (ret, 0, 0, errno | _ENOSYS),
    ]
    end = len(program)
    labels = {"signal": end - 5, "allow": end - 3, "eperm": end - 2, "enosys": end - 1}
    out = b""
    for index, (code, true, false, k) in enumerate(program):
        jt = labels[true] - index - 1 if isinstance(true, str) else true
        jf = labels[false] - index - 1 if isinstance(false, str) else false
        out += code.to_bytes(2, "little") + bytes((jt, jf)) + k.to_bytes(4, "little")
    return out


def _harden() -> None:
    """Become non-dumpable and install the seccomp filter.

    Through the builtin _ctypes only: the full ctypes package costs ~6 ms of
    start-up. Non-dumpable failing is not fatal; the filter failing is.
    """
    import _ctypes

    class _Int(_ctypes._SimpleCData):  # type: ignore[type-arg]
        _type_ = "i"

    class _Pointer(_ctypes._SimpleCData):  # type: ignore[type-arg]
        _type_ = "P"

    class _Char(_ctypes._SimpleCData):  # type: ignore[type-arg]
        _type_ = "c"

    class _Func(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = _Int

    def buffer(data: bytes) -> _ctypes.Array[_Char]:
        class _Bytes(_ctypes.Array):  # type: ignore[type-arg]
            _type_ = _Char
            _length_ = len(data)

        return _Bytes.from_buffer_copy(data)

    libc = _ctypes.dlopen(None)  # type: ignore[arg-type]  # None: the program itself
    prctl = _Func(_ctypes.dlsym(libc, "prctl"))
    prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    program = seccomp_program(os.uname().machine)
    code = buffer(program)
    # struct sock_fprog: the entry count, padding, a pointer to the entries.
    fprog = buffer(
        (len(program) // 8).to_bytes(8, "little") + _ctypes.addressof(code).to_bytes(8, "little")
    )
    if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or (
        prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, _Pointer(_ctypes.addressof(fprog)), 0, 0) != 0
    ):
        sys.exit("sandbox supervisor: cannot install the seccomp filter")


def _read_request(fd: int) -> Request | None:
    """Read the header line and the code that follows it; None on end of input."""
    buf = b""
    while b"\n" not in buf:
        if len(buf) > MAX_HEADER_BYTES:
            raise ValueError("request header too long")
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buf += chunk
    header, _, rest = buf.partition(b"\n")
    code_len = int(header.split()[4])
    parts = [rest]
    have = len(rest)
    while have < code_len:
        chunk = os.read(fd, min(1 << 20, code_len - have))
        if not chunk:
            return None
        parts.append(chunk)
        have += len(chunk)
    return Request(header, b"".join(parts)[:code_len])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:  # a non-blocking descriptor that is full: wait for room
            import select

            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll(100)


def _spawn(request: Request, stdout: int, stderr: int) -> int:
    interpreter, filename = INTERPRETERS[request.language]
    path = WORKDIR + "/" + filename
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    try:
        _write_all(fd, request.code)
    finally:
        os.close(fd)
    # The OOM killer should take the code, never the supervisor that reports
    # it: the child inherits 1000 (first to go), and we may lower ours back
    # to where it was without privilege.
    _set_oom_score_adj(b"1000")
    try:
        # Python ignores SIGPIPE and SIGXFSZ; an ignored disposition survives
        # exec, so reset both or `yes | head` would spin and a file-size limit
        # would surface as EFBIG instead of killing the writer.
        return os.posix_spawn(
            interpreter,
            [os.path.basename(interpreter), path],
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, stdout, 1),
                (os.POSIX_SPAWN_DUP2, stderr, 2),
            ],
            setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
            # A session of its own: `kill 0` (bash's `trap 'kill 0' EXIT`) then
            # signals the code's processes, not the supervisor with them.
            setsid=True,
        )
    finally:
        _set_oom_score_adj(b"0")


# Opened before the process becomes non-dumpable: after that its /proc files
# belong to root and could no longer be opened for writing.
_oom_adj_fd = -1


def _open_oom_score_adj() -> None:
    global _oom_adj_fd
    try:
        _oom_adj_fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        _oom_adj_fd = -1


def _set_oom_score_adj(value: bytes) -> None:
    if _oom_adj_fd >= 0:
        try:  # noqa: SIM105 (contextlib would cost start-up time)
            os.pwrite(_oom_adj_fd, value, 0)
        except OSError:
            pass


class Relay:
    """The code's stdout and stderr: pipes of the sandbox's own kernel, copied to ours.

    The code never writes to the container's streams directly. Those are host
    pipes, and a kernel may complete a write to them only in part (gVisor does:
    64 KiB of a 100 KB write), which a program that does not retry (Python's
    unbuffered stdout) loses silently. A pipe inside the container has full
    write semantics under every runtime; the supervisor copies it with
    complete writes.
    """

    def __init__(self) -> None:
        self.ends: dict[int, int] = {}  # read end: our stream
        self.child_ends: list[int] = []  # write ends, for the code
        for ours in (1, 2):
            read, write = os.pipe2(os.O_CLOEXEC)
            self.ends[read] = ours
            self.child_ends.append(write)

    def started(self) -> None:
        """Close our copies of the write ends: end of input then means every writer is gone."""
        for fd in self.child_ends:
            os.close(fd)
        self.child_ends = []

    def copy(self, fd: int) -> bool:
        """Copy what one read end has; False at its end of input."""
        data = os.read(fd, 65536)
        if not data:
            os.close(fd)
            del self.ends[fd]
            return False
        _write_all(self.ends[fd], data)
        return True

    def drain(self) -> None:
        """Copy everything left; call once no process can write any more."""
        for fd in list(self.ends):
            while self.copy(fd):
                pass


def _wait_child(pid: int, timeout: float, relay: Relay) -> int | None:
    """Copy the code's output until it exits: its wait status, or None at the timeout."""
    import select

    deadline = time.monotonic() + timeout
    poller = select.poll()
    for fd in relay.ends:
        poller.register(fd, select.POLLIN)
    try:
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
        step_ms = 1 << 30
    except (AttributeError, OSError):
        # No pidfd (gVisor has none): look at the child every 5 ms.
        pidfd = -1
        step_ms = 5
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for fd, _ in poller.poll(min(step_ms, int(left * 1000) + 1)):
                if fd != pidfd and not relay.copy(fd):
                    poller.unregister(fd)
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _kill_everything_else() -> None:
    """SIGKILL every other process of the container and reap them all.

    kill(-1) from pid 1 reaches every process of the namespace but itself;
    orphans are re-parented to us, so once kill(-1) finds no process left
    nothing can write after the report. A process still being forked can miss
    the signal (gVisor: a fork bomb's newest child lives on), so reaping never
    blocks: while children are alive and none is dead yet, everything is
    killed again.
    """
    while True:
        try:
            os.kill(-1, _signal.SIGKILL)
        except ProcessLookupError:
            return
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
            time.sleep(0.001)  # children alive, none dead yet: let the kill land
        except ChildProcessError:
            pass


def _oom_kills() -> int:
    count = 0
    for path in _OOM_FILES:
        try:
            with open(path, "rb") as f:
                for line in f.read(4096).splitlines():
                    key, _, value = line.partition(b" ")
                    if key == b"oom_kill":
                        count = max(count, int(value))
        except (OSError, ValueError):
            continue
    return count


def _read_file(path: str, limit: int) -> tuple[int, bytes] | None:
    """(size, first `limit` bytes) of a regular file, never following links."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:
            return None
        parts = []
        have = 0
        while have < limit:
            chunk = os.read(fd, min(65536, limit - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        return st.st_size, b"".join(parts)
    finally:
        os.close(fd)


def _output_files(request: Request) -> tuple[list[tuple[bytes, int, bytes]], int]:
    """The output folder's regular files (capped) and how many were left out.

    Scanning is bounded too: the code may have created millions of entries,
    so only a fixed number are looked at and the rest count as omitted.
    """
    files: list[tuple[bytes, int, bytes]] = []
    omitted = 0
    budget = request.max_total_bytes
    scan_left = request.max_files * 4 + 64
    stack = [(OUTPUT_DIR, b"", 0)]
    while stack and scan_left > 0:
        directory, prefix, depth = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    scan_left -= 1
                    if scan_left < 0:
                        omitted += 1
                        break
                    name = prefix + os.fsencode(entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        if depth < MAX_SCAN_DEPTH:
                            stack.append((entry.path, name + b"/", depth + 1))
                        continue
                    got = None
                    if len(files) < request.max_files:
                        got = _read_file(entry.path, min(request.max_file_bytes, budget))
                    if got is None:
                        omitted += 1  # over the count, or a link, fifo, socket, device
                        continue
                    budget -= len(got[1])
                    files.append((name, got[0], got[1]))
        except OSError:
            continue
    files.sort()
    return files, omitted


def _kernel_release() -> bytes:
    """The kernel the code ran on (uname -r): the host's, or gVisor's own."""
    release = os.fsencode(os.uname().release)[:64]
    return bytes(c if 0x21 <= c < 0x7F else 0x3F for c in release) or b"?"


def _report(request: Request, status: int | None, duration: float) -> None:
    if status is None:
        exit_line = b"exit none\n"
    else:
        code = os.waitstatus_to_exitcode(status)
        exit_line = b"exit %d\n" % (128 - code if code < 0 else code)
    files, omitted = _output_files(request)
    out = [
        marker(request.nonce),
        exit_line,
        b"timed_out %d\n" % (status is None),
        b"oom_kills %d\n" % _oom_kills(),
        b"duration_ms %d\n" % int(duration * 1000),
        b"kernel %s\n" % _kernel_release(),
    ]
    for name, size, data in files:
        out.append(b"file %d %d %d\n" % (len(name), size, len(data)))
        out.append(name)
        out.append(data)
    out.append(b"omitted %d\nend\n" % omitted)
    _write_all(1, b"".join(out))
    # The same marker closes stderr, so the host knows it has all of it too.
    _write_all(2, marker(request.nonce))


def main(argv: list[str]) -> None:
    if os.getpid() != 1:
        # kill(-1) outside a container would hit every process of the user.
        sys.exit("sandbox supervisor: refusing to run outside a container (not pid 1)")
    _open_oom_score_adj()
    # Python's SIGINT handler would let a stray SIGINT end the supervisor: none but the watchdog's.
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
    _harden()
    idle_seconds = float(argv[1])
    grace_seconds = float(argv[2])
    _arm_watchdog(idle_seconds)
    request = _read_request(0)
    if request is None:
        os._exit(0)
    _arm_watchdog(request.timeout + grace_seconds)
    started = time.monotonic()
    relay = Relay()
    try:
        pid = _spawn(request, *relay.child_ends)
    except OSError as exc:
        _write_all(2, b"sandbox: cannot start the code: %s\n" % os.fsencode(str(exc)))
        _report(request, 127 << 8, 0.0)
        os._exit(0)
    relay.started()
    status = _wait_child(pid, request.timeout, relay)
    duration = time.monotonic() - started
    _kill_everything_else()
    # Every writer is dead now: what they wrote is in the pipes, up to its end.
    relay.drain()
    _report(request, status, duration)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
