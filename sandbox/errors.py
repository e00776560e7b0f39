"""The two ways a run can fail without a result: the sandbox, or the request."""

from __future__ import annotations


class SandboxError(Exception):
    """The sandbox could not run the code (Docker unreachable, image missing, ...).

    Never raised for anything the code itself did: a crash, a timeout or an
    out-of-memory kill is a normal ``ExecutionResult``.
    """


class InvalidInputError(SandboxError):
    """The request was refused before any container existed (hostile names, sizes)."""
