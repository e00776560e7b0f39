"""A deterministic stand-in for the Docker sandbox, for unit tests of its callers.

It never runs code. It records every request and answers with scripted
outcomes; the bytes of an outcome go through the same validation, capture and
caps as the real sandbox, so results have the real shapes (truncation notes,
replacement characters, omitted files, ``InvalidInputError`` for hostile names).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sandbox.config import SandboxConfig
from sandbox.errors import SandboxError
from sandbox.models import ExecutionRequest, ExecutionResult
from sandbox.naming import container_name
from sandbox.results import RawOutcome, build_result
from sandbox.validation import prepare_request

# What a fake result says ran the code: nothing did.
FAKE_RUNTIME = "fake"

Matcher = Callable[[ExecutionRequest], bool]


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


@dataclass(frozen=True)
class FakeOutcome:
    """What the fake pretends the code did. ``error`` is raised instead of returning."""

    exit_code: int | None = 0
    stdout: bytes | str = b""
    stderr: bytes | str = b""
    output_files: Mapping[str, bytes | str] = field(default_factory=dict)
    timed_out: bool = False
    oom_killed: bool = False
    duration_seconds: float = 0.01
    error: SandboxError | None = None


class FakeSandbox:
    """Implements ``Sandbox``; answers from a queue, then rules, then a default."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        default: FakeOutcome | None = None,
    ) -> None:
        self.config = config or SandboxConfig(pool_size=0)
        self.default = default or FakeOutcome()
        self.requests: list[ExecutionRequest] = []
        self._queue: deque[FakeOutcome] = deque()
        self._rules: list[tuple[Matcher, FakeOutcome]] = []

    def queue(self, *outcomes: FakeOutcome) -> None:
        """Answer the next runs with these outcomes, in order."""
        self._queue.extend(outcomes)

    def on(self, match: str | Matcher, outcome: FakeOutcome) -> None:
        """Answer runs whose code equals ``match`` (or for which it returns True)."""
        if isinstance(match, str):
            code = match
            self._rules.append((lambda request: request.code == code, outcome))
        else:
            self._rules.append((match, outcome))

    async def start(self) -> None:
        """Nothing to start; present so the fake can replace DockerSandbox anywhere."""

    async def close(self) -> None:
        """Nothing to close."""

    async def run(self, request: ExecutionRequest) -> ExecutionResult:
        prepared = prepare_request(request, self.config)
        self.requests.append(request)
        outcome = self._pick(request)
        if outcome.error is not None:
            raise outcome.error
        raw = RawOutcome.empty(self.config)
        raw.stdout.add(_as_bytes(outcome.stdout))
        raw.stderr.add(_as_bytes(outcome.stderr))
        for name, data in sorted(outcome.output_files.items()):
            content = _as_bytes(data)
            raw.files.add(name.encode("utf-8", "surrogateescape"), len(content), content)
        raw.exit_code = outcome.exit_code
        raw.timed_out = outcome.timed_out
        raw.oom_killed = outcome.oom_killed
        raw.duration_seconds = min(outcome.duration_seconds, prepared.timeout)
        name = container_name(request.ticket_id, request.run_id, request.step_id)
        return build_result(raw, container_name=name, from_pool=False, runtime=FAKE_RUNTIME)

    def _pick(self, request: ExecutionRequest) -> FakeOutcome:
        if self._queue:
            return self._queue.popleft()
        for matches, outcome in self._rules:
            if matches(request):
                return outcome
        return self.default
