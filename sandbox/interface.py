"""The one thing callers depend on: something that runs an ``ExecutionRequest``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sandbox.models import ExecutionRequest, ExecutionResult


@runtime_checkable
class Sandbox(Protocol):
    """Runs one piece of code in isolation and returns its result.

    Implementations: ``DockerSandbox`` (the real boundary) and ``FakeSandbox``
    (deterministic, for tests of callers). ``run`` raises ``InvalidInputError``
    for a refused request and ``SandboxError`` when the sandbox itself failed;
    anything the code does is a normal result.
    """

    async def run(self, request: ExecutionRequest) -> ExecutionResult: ...
