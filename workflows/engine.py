"""Where the Hatchet engine is, and how it is started.

Two modes, chosen by the environment:

* ``HATCHET_CLIENT_TOKEN`` set (``Settings.external_engine``): an external
  engine (Hatchet Cloud or a self-hosted cluster). The SDK reads its other
  ``HATCHET_CLIENT_*`` variables itself.
* otherwise: the SDK's embedded mode. ``support-agent engine run`` starts the
  embedded sidecar through ``hatchet_sdk.embedded`` and records its handshake
  (token, gRPC address, API URL) plus its own pid in ``engine.json``. Workers
  and clients hand that handshake to ``Hatchet.from_embedded()``, which then
  connects instead of starting a second engine.

The engine runs in its own process on purpose: it must outlive any one
worker, so that a restarted (or SIGKILLed) worker finds the same engine and
the same runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatchet_sdk import ClientConfig, EmbeddedHatchetConfig, Hatchet

from workflows.settings import ConfigurationError, Settings

HANDSHAKE_ENV = "HATCHET_EMBEDDED_HANDSHAKE"
# The descriptor of the start lock ``start_engine_background`` holds for the
# launcher it starts (see ``_take_start_lock``).
_LOCK_FD_ENV = "SUPPORT_AGENT_ENGINE_LOCK_FD"


class EngineUnavailableError(RuntimeError):
    """No engine is configured or running; the message says how to get one."""


@dataclass(frozen=True)
class EngineInfo:
    token: str
    tenant_id: str
    grpc_address: str
    api_url: str
    pid: int
    # When that process started (Linux: /proc/<pid>/stat), so that a pid the
    # system has since given to another process is never taken for the engine
    # (``engine stop`` would signal it). None: unknown, the pid alone decides.
    started: str | None = None

    def handshake_json(self) -> str:
        return json.dumps(
            {
                "token": self.token,
                "tenant_id": self.tenant_id,
                "grpc_address": self.grpc_address,
                "api_url": self.api_url,
            }
        )


def _pid_alive(pid: int) -> bool:
    # An engine this process started (``start_engine_background``) is its
    # child: once it exits it stays a zombie, which signal 0 still reaches,
    # until it is reaped. Reap it here, or a stop from the same process (a
    # test restarting the engine) would wait out its whole timeout.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent reaps it
        pass
    else:
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (None: unknown or gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def running_engine(settings: Settings) -> EngineInfo | None:
    """The engine recorded in the state dir, if its owning process still lives."""
    try:
        raw: dict[str, Any] = json.loads(settings.engine_file.read_text())
        info = EngineInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None
    if not _pid_alive(info.pid):
        return None
    if info.started is not None and process_start(info.pid) != info.started:
        return None  # the pid was reused: that process is not the engine
    return info


def connect(settings: Settings, *, namespace: str | None = None) -> Hatchet:
    """A Hatchet client for the configured engine, or a clear error.

    ``namespace`` overrides ``HATCHET_CLIENT_NAMESPACE`` (tests isolate themselves this way).
    """
    overrides: dict[str, Any] = {} if namespace is None else {"namespace": namespace}
    if settings.external_engine:
        # The SDK reads the rest of its HATCHET_CLIENT_* variables itself.
        assert settings.hatchet_token is not None
        token = settings.hatchet_token.get_secret_value()
        return Hatchet(config=ClientConfig(token=token, **overrides))
    info = running_engine(settings)
    if info is None:
        raise EngineUnavailableError(
            "no Hatchet engine is running: start one with `support-agent engine start` "
            "(or `make engine`), or set HATCHET_CLIENT_TOKEN for an external engine"
        )
    os.environ[HANDSHAKE_ENV] = info.handshake_json()
    return Hatchet.from_embedded(ClientConfig(embedded=EmbeddedHatchetConfig(), **overrides))


def _private_dir(path: Path) -> None:
    """Create ``path`` if needed and make it owner-only (it holds tokens and the
    database URL): ``mkdir``'s mode applies only to a directory it creates."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _write_atomic(path: Path, text: str) -> None:
    _private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    # Owner-only from its creation: it holds an API token.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    tmp.replace(path)


# What the engine's processes may inherit from whoever starts them: the
# settings they read, never the model's or the helpdesk's credentials.
_ENGINE_ENV_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH"}
    | {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}  # the launcher's own interpreter
    | {"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"}  # the engine's Go runtime
)
# The engine's own configuration, its secrets included (its database password,
# its encryption keys), but not a client's token for another engine.
_ENGINE_ENV_PREFIXES = ("LC_", "HATCHET_", "SERVER_", "DATABASE_", "PG")
_NOT_THE_ENGINES = frozenset({"HATCHET_CLIENT_TOKEN"})
# Our settings, but not the credentials of the model, the helpdesk or the store.
_SECRET_WORDS = ("SECRET", "TOKEN", "KEY", "PASSWORD")


def engine_environment(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` without what the engine does not need (API keys, webhook secrets)."""

    def needed(name: str) -> bool:
        if name in _ENGINE_ENV_NAMES:
            return True
        if name.startswith(_ENGINE_ENV_PREFIXES):
            return name not in _NOT_THE_ENGINES
        if name.startswith("SUPPORT_AGENT_"):
            return not any(word in name for word in _SECRET_WORDS)
        return False

    return {name: value for name, value in environ.items() if needed(name)}


# A libpq key=value connection string's password, quoted or not (a backslash
# escapes the next character in either form, as libpq reads it).
_CONNINFO_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|(?:\\.|[^\s\\])+)")


def split_password(url: str) -> tuple[str, str | None]:
    """A database URL without its password, and the password (decoded), if it has one.

    The SDK hands the URL to the sidecar on its command line, which every
    local user can read; the password goes in the sidecar's environment
    instead (``PGPASSWORD``, which the engine's PostgreSQL driver honours).
    Every form libpq reads is covered: ``user:password@`` and a ``password``
    query parameter in a URL, and ``password=`` in a key=value string. A URL
    without a password comes back exactly as it was.
    """
    if "://" not in url:
        found = _CONNINFO_PASSWORD.search(url)
        if found is None:
            return url, None
        raw = found.group(1)
        quoted = raw[1:-1] if raw.startswith("'") else raw
        password = re.sub(r"\\(.)", r"\1", quoted)
        return f"{url[: found.start()]} {url[found.end() :]}".strip(), password
    parts = urllib.parse.urlsplit(url)
    found_password: str | None = None
    if parts.password is not None:
        found_password = urllib.parse.unquote(parts.password)
        userinfo, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}@{host}")
    # The query's other parameters are kept as they were written, not re-encoded.
    pieces = parts.query.split("&") if parts.query else []
    kept = [p for p in pieces if urllib.parse.unquote_plus(p.partition("=")[0]) != "password"]
    if len(kept) != len(pieces):
        given = [p for p in pieces if p not in kept][-1].partition("=")[2]
        found_password = urllib.parse.unquote(given)
        parts = parts._replace(query="&".join(kept))
    if found_password is None:
        return url, None
    return parts.geturl(), found_password


def embedded_options(settings: Settings) -> EmbeddedHatchetConfig:
    """The SDK's embedded-engine options, all from our settings."""
    binary = settings.engine_binary_path
    if binary is None or not binary.is_file():
        # Without a binary the SDK would try to download the sidecar from the internet.
        raise EngineUnavailableError(
            f"no engine sidecar at {binary or '(none configured)'}: run `make setup` in the "
            "project checkout, or set HATCHET_CLIENT_EMBEDDED_BINARY_PATH to a sidecar binary"
        )
    try:
        database_url = settings.database_url()
    except ConfigurationError as exc:
        raise EngineUnavailableError(str(exc)) from exc
    return EmbeddedHatchetConfig(
        binary_path=str(binary),
        database_url=split_password(database_url)[0],
        grpc_port=settings.engine_grpc_port,
        api_port=settings.engine_api_port,
        ready_timeout_seconds=settings.engine_start_timeout_seconds,
    )


def _take_start_lock(settings: Settings) -> int:
    """An open descriptor holding the state dir's start lock (``engine.lock``).

    Held from the check for a running engine until the new one's
    ``engine.json`` is written: two ``engine start`` at once otherwise both
    found none and started two sidecars, the second of which took the first's
    engine for its own. A start waits here for the one before it, then finds
    its engine. ``start_engine_background`` hands its descriptor to the
    launcher it starts (``_LOCK_FD_ENV``): the lock belongs to the open file,
    so the launcher holds it on (even if the starter is interrupted) until its
    engine is recorded or it exits.
    """
    _private_dir(settings.state_dir)
    path = settings.state_dir / "engine.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    inherited = os.environ.pop(_LOCK_FD_ENV, "")
    if inherited.isdigit():
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(int(inherited)), os.fstat(fd)):
                os.close(fd)
                return int(inherited)  # held already: taking it again succeeds at once
    deadline = time.monotonic() + settings.engine_start_timeout_seconds + 15
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise EngineUnavailableError(
                    f"another engine start has held {path} for too long; try again"
                ) from None
            time.sleep(0.1)


def run_engine(settings: Settings) -> int:
    """Run the embedded engine in the foreground until SIGTERM/SIGINT (``engine run``)."""
    if settings.external_engine:
        raise EngineUnavailableError(
            "HATCHET_CLIENT_TOKEN is set: that external engine is used, none is started here"
        )
    lock = _take_start_lock(settings)
    held = True

    def release() -> None:  # once: the number may name another file afterwards
        nonlocal held
        if held:
            held = False
            os.close(lock)

    try:
        return _run_engine(settings, release)
    finally:
        release()


def _run_engine(settings: Settings, recorded: Callable[[], None]) -> int:
    from hatchet_sdk.embedded import start_embedded_sidecar

    existing = running_engine(settings)
    if existing is not None:
        raise EngineUnavailableError(
            f"an engine is already running (pid {existing.pid}, API {existing.api_url})"
        )
    options = embedded_options(settings)
    # This process exists to run the sidecar, which inherits its environment:
    # keep only what the engine needs, plus its database password.
    database_url = settings.database_url()
    password = split_password(database_url)[1]
    kept = engine_environment(dict(os.environ))
    os.environ.clear()
    os.environ.update(kept)
    if password is not None:
        os.environ["PGPASSWORD"] = password
    # Where an earlier version kept the engine's keys for a URL whose password
    # its sidecar did not strip (a key=value or query form): it moves them.
    os.environ["HATCHET_ENGINE_PREVIOUS_STATE"] = hashlib.sha256(database_url.encode()).hexdigest()[
        :12
    ]

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    try:
        sidecar = start_embedded_sidecar(options)
    except (RuntimeError, TimeoutError) as exc:
        raise EngineUnavailableError(f"the engine did not start: {exc}") from exc
    try:
        hs = sidecar.handshake
        info = EngineInfo(
            hs.token, hs.tenant_id, hs.grpc_address, hs.api_url, os.getpid(),
            started=process_start(os.getpid()),
        )  # fmt: skip
        _write_atomic(settings.engine_file, json.dumps(info.__dict__))
        recorded()  # releases the start lock: the next start finds this engine
        print(f"engine ready: gRPC {hs.grpc_address}, API {hs.api_url}", flush=True)
        while not stop.wait(1.0):
            if sidecar.process.poll() is not None:
                print(f"engine exited with code {sidecar.process.returncode}", file=sys.stderr)
                return 1
        return 0
    finally:
        with contextlib.suppress(OSError):
            if (
                running_engine(settings) is None
                or json.loads(settings.engine_file.read_text()).get("pid") == os.getpid()
            ):
                settings.engine_file.unlink()
        sidecar.stop()


def start_engine_background(settings: Settings) -> EngineInfo:
    """Start ``support-agent engine run`` detached and wait until it is ready (``engine start``).

    Idempotent: an engine that is already running is returned as it is.
    """
    existing = running_engine(settings)
    if existing is not None:
        return existing
    embedded_options(settings)  # a missing sidecar or database is said here, not in the log
    lock = _take_start_lock(settings)  # a start under way: wait for it, then use its engine
    try:
        existing = running_engine(settings)
        if existing is not None:
            return existing
        return _start_launcher(settings, lock)
    finally:
        os.close(lock)


def _start_launcher(settings: Settings, lock: int) -> EngineInfo:
    log_path = settings.state_dir / "engine-launcher.log"
    with log_path.open("ab") as log:
        start_of_this_run = log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "workflows.engine"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not killed with the terminal or the caller
            env={**engine_environment(dict(os.environ)), _LOCK_FD_ENV: str(lock)},
            pass_fds=(lock,),
        )
    deadline = time.monotonic() + settings.engine_start_timeout_seconds
    while time.monotonic() < deadline:
        info = running_engine(settings)
        if info is not None and info.pid == process.pid:
            return info
        if process.poll() is not None:
            raise EngineUnavailableError(
                f"the engine exited during start-up (code {process.returncode})"
                + start_failure(log_path, start_of_this_run)
            )
        time.sleep(0.25)
    process.terminate()
    raise EngineUnavailableError(
        "the engine was not ready in time" + start_failure(log_path, start_of_this_run)
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What the sidecar writes into engine.log before each start (setup/hatchet-sidecar).
_START_MARK = "hatchet-sidecar: starting"
_WORTH_QUOTING = re.compile(r"\b(ERR|FTL|PNC|error|fatal|panic|failed)\b|support-engine:", re.I)
# What an engine logs while it is being stopped (the sidecar gave up on it): not why it failed.
_STOPPING_NOISE = re.compile(r"context canceled|shutting down|received signal", re.I)


def start_failure(launcher_log: Path, offset: int, lines: int = 5) -> str:
    """Why a start failed, for its error message: the sidecar's own word (its
    ``[setup] error:`` line) and the last lines of this start in the engine's
    log that say something went wrong, instead of sending the user through
    ``engine-launcher.log`` to find ``engine.log``."""
    try:
        with launcher_log.open("rb") as log:
            log.seek(offset)
            launched = _ANSI.sub("", log.read().decode(errors="replace")).splitlines()
    except OSError:
        launched = []
    errors = ("[setup] error:", "support-agent: error:")
    said = [line.strip() for line in launched if line.startswith(errors)]
    sidecar = [line for line in said if line.startswith("[setup]")]
    message = f": {(sidecar or said)[-1]}" if said else ""
    engine_log = re.search(r"see (\S*engine\.log)", message)
    if engine_log is not None:
        try:
            with open(engine_log.group(1), "rb") as log:
                log.seek(max(0, os.fstat(log.fileno()).st_size - 256 * 1024))
                text = _ANSI.sub("", log.read().decode(errors="replace"))
        except OSError:
            text = ""
        this_start = text.rpartition(_START_MARK)[2].splitlines()[1:]
        written = [line.rstrip() for line in this_start if line.strip()]
        written = [line for line in written if not _STOPPING_NOISE.search(line)]
        quoted = [line for line in written if _WORTH_QUOTING.search(line)] or written
        if quoted:
            message += "\n  last lines of the engine's log:\n" + "\n".join(
                f"    {line[:300]}" for line in quoted[-lines:]
            )
    return f"{message}\n  (the launcher's output: {launcher_log})"


def stop_engine(settings: Settings, timeout: float = 60.0) -> bool:
    """Stop the engine started by ``engine start``; False when none was running.

    Under the start lock: a stop while a start is under way waits for its
    engine and stops it (it used to find none, and the engine ran on), and a
    start meanwhile waits until this engine is gone.
    """
    lock = _take_start_lock(settings)
    try:
        info = running_engine(settings)
        if info is None:
            return False
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid_alive(info.pid):
            os.kill(info.pid, signal.SIGKILL)
        return True
    finally:
        os.close(lock)


def main() -> int:
    """``python -m workflows.engine``: what ``engine start`` runs in the background."""
    settings = Settings()
    try:
        return run_engine(settings)
    except EngineUnavailableError as exc:
        print(f"support-agent: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
