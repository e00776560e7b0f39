"""Per-ticket budgets.

Usage is derived from child-task outputs recorded in the durable log, so the
count is identical after a retry or a replay: a crashed worker cannot reset a
ticket's budget.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Budget(BaseModel):
    max_steps: int = Field(default=12, ge=1, description="Model turns per ticket.")
    max_code_runs: int = Field(default=24, ge=0, description="Sandbox executions per ticket.")
    max_sandbox_seconds: float = Field(
        default=600, ge=0, description="Total sandbox time (0: unlimited)."
    )
    max_tokens: int = Field(default=600_000, ge=1, description="Model tokens (in + out).")


class Spent(BaseModel):
    steps: int = 0
    code_runs: int = 0
    sandbox_seconds: float = 0.0
    tokens: int = 0


def exhausted(budget: Budget, spent: Spent) -> str | None:
    """The first budget that ran out, with the figures, or None.

    Code runs are checked where they are requested (``code_runs_left``): a
    turn that asks for more runs than are left gets the rest refused.
    """
    if spent.steps >= budget.max_steps:
        return f"step budget exhausted ({spent.steps} of {budget.max_steps} model turns)"
    if spent.sandbox_seconds >= budget.max_sandbox_seconds > 0:
        return (
            f"sandbox-time budget exhausted ({spent.sandbox_seconds:.1f} of "
            f"{budget.max_sandbox_seconds:g} s)"
        )
    if spent.tokens >= budget.max_tokens:
        return f"token budget exhausted ({spent.tokens} of {budget.max_tokens} tokens)"
    return None


def code_runs_left(budget: Budget, spent: Spent) -> int:
    return max(0, budget.max_code_runs - spent.code_runs)


def code_runs_exhausted(budget: Budget, spent: Spent) -> str:
    return f"code-run budget exhausted ({spent.code_runs} of {budget.max_code_runs} runs)"
