"""Runs one piece of untrusted code in a throwaway, locked-down Docker container.

This package is the product's security boundary. It has no Hatchet and no
LLM dependency: callers build an ``ExecutionRequest``, await
``Sandbox.run`` and get an ``ExecutionResult``.

Layout (one concern per module):
    config        SandboxConfig, every limit with a safe default
    models        request and result models
    validation    hostile-input checks, before any container exists
    docker_sandbox  DockerSandbox: the async orchestration
    containers    the locked-down container settings and blocking Docker calls
    supervisor    the container's pid 1 (runs inside the container)
    conversation  one request/report exchange with the supervisor
    attach, wire, capture   bounded stream reading, protocol, output capping
    results       captured bytes -> ExecutionResult (shared with the fake)
    pool, reaper, naming    warm pool, leftover removal, names and labels
    fake          FakeSandbox for tests of callers
"""

from sandbox.config import SandboxConfig
from sandbox.docker_sandbox import DockerSandbox
from sandbox.errors import InvalidInputError, SandboxError
from sandbox.fake import FakeOutcome, FakeSandbox
from sandbox.interface import Sandbox
from sandbox.models import ExecutionRequest, ExecutionResult, InputFile, OutputFile
from sandbox.reaper import reap_expired
from sandbox.validation import validate_input_name, validate_input_path

__all__ = [
    "DockerSandbox",
    "ExecutionRequest",
    "ExecutionResult",
    "FakeOutcome",
    "FakeSandbox",
    "InputFile",
    "InvalidInputError",
    "OutputFile",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "reap_expired",
    "validate_input_name",
    "validate_input_path",
]
