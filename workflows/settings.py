"""The one place configuration is read: environment variables, prefix ``SUPPORT_AGENT_``.

Libraries (``agent``, ``sandbox``) take explicit arguments; only this module
reads the environment, so a setting has exactly one name and one default.
Hatchet's own connection variables (``HATCHET_CLIENT_*``) are read by the SDK
and are documented next to these in the README.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.budget import Budget
from sandbox.config import SandboxConfig


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "support-agent"


class Settings(BaseSettings):
    """Runtime configuration of the worker, the engine launcher and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="SUPPORT_AGENT_", env_nested_delimiter="__", extra="ignore"
    )

    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where the engine's connection file, logs and pid files live.",
    )
    reply_timeout_seconds: float = Field(
        default=48 * 3600,
        gt=0,
        description="How long a ticket waits for the customer's reply before escalating.",
    )
    reply_lookback_seconds: float = Field(
        default=300,
        ge=0,
        description="Replies pushed this long before the wait starts still count.",
    )
    ticket_execution_timeout_seconds: float | None = Field(
        default=None,
        description=(
            "Execution timeout of the durable ticket task. Defaults to the reply timeout plus"
            " one hour, so a long wait is never killed by Hatchet's 60 s default."
        ),
    )
    eviction_ttl_seconds: float = Field(
        default=300,
        gt=0,
        description="A ticket waiting this long is evicted from its worker until the wait ends.",
    )
    worker_name: str = Field(default="support-agent", description="Worker name in Hatchet.")
    worker_slots: int = Field(default=20, ge=1, description="Concurrent non-durable tasks.")
    worker_durable_slots: int = Field(default=200, ge=1, description="Concurrent tickets.")
    engine_start_timeout_seconds: float = Field(
        default=300, gt=0, description="How long `engine start` waits for the engine to be ready."
    )

    # The agent.
    llm: Literal["auto", "claude", "offline"] = Field(
        default="auto",
        description="Who plans the diagnosis: Claude (needs ANTHROPIC_API_KEY), the offline "
        "planner, or auto (Claude when a key is set, else the offline planner).",
    )
    model: str = Field(default="claude-sonnet-5-5", description="Claude model id.")
    max_tokens: int = Field(default=4096, ge=256, description="Output tokens per model turn.")
    llm_timeout_seconds: float = Field(default=120, gt=0, description="One model call.")
    llm_retries: int = Field(default=4, ge=0, description="Hatchet retries of a failed turn.")
    llm_requests_per_minute: int = Field(
        default=50, ge=1, description="Shared Hatchet rate limit on model calls, all workers."
    )
    per_customer_concurrency: int = Field(
        default=2,
        ge=0,
        description="Model turns and code runs at once per customer, round-robined across "
        "customers; 0 turns the fairness queue off.",
    )
    max_rounds: int = Field(default=3, ge=1, description="Customer replies handled per ticket.")
    code_timeout_seconds: float = Field(default=60, gt=0, description="One code run.")
    budget: Budget = Field(default_factory=Budget)

    # The sandbox (SUPPORT_AGENT_SANDBOX__MEMORY_MB=..., etc.).
    run_sandboxes: bool = Field(
        default=True, description="This worker runs code (it must reach a Docker daemon)."
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    @property
    def engine_file(self) -> Path:
        """Connection details of the engine started by ``support-agent engine``."""
        return self.state_dir / "engine.json"

    @property
    def reply_timeout(self) -> timedelta:
        return timedelta(seconds=self.reply_timeout_seconds)

    @property
    def ticket_execution_timeout(self) -> timedelta:
        if self.ticket_execution_timeout_seconds is not None:
            return timedelta(seconds=self.ticket_execution_timeout_seconds)
        return self.reply_timeout + timedelta(hours=1)
