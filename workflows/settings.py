"""The one place configuration is read: environment variables, prefix ``SUPPORT_AGENT_``.

Libraries (``agent``, ``sandbox``) take explicit arguments; only this module
reads the environment, so a setting has exactly one name and one default.
A few variables keep the names their ecosystems gave them
(``ANTHROPIC_API_KEY``, ``HATCHET_CLIENT_TOKEN``,
``HATCHET_CLIENT_EMBEDDED_*``): they are read here too, under those names.
The defaults work from a plain shell after ``make setup``: the engine
launcher finds the sidecar in this checkout and the database set-up made,
and every command shares one state directory.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.budget import Budget
from evidence.limits import MIB, EvidenceLimits
from sandbox.config import SandboxConfig
from workflows.names import LLM_RATE_LIMIT_KEY

# The checkout this package runs from (an editable install): where set-up's files are.
SOURCE_ROOT = Path(__file__).resolve().parent.parent
# Where set-up keeps the URL (with a password it generated) of the database it made.
DATABASE_URL_FILE = "database-url"


class ConfigurationError(ValueError):
    """The configuration cannot work; the message says which variable to set."""


# The longest single wait of a ticket for its customer. The engine keeps timing
# a durable task while it is evicted, from its last assignment, and kills it at
# its execution timeout; a ticket may wait far longer (the API takes reply
# timeouts of up to 30 days), so it waits in slices, each waking the task,
# which resets that clock. A constant, not a setting: the durable log must be
# the same on every worker that replays it. It equals the default reply
# timeout, so a ticket whose wait began under an earlier version (one sleep
# as long as its reply timeout) replays unchanged.
WAIT_SLICE_SECONDS = 48 * 3600

# Standard Webhooks secrets: 24 to 64 random bytes, as its reference libraries make them.
MIN_WEBHOOK_KEY_BYTES = 24


def webhook_secret_problem(name: str, secret: str) -> str | None:
    """What is wrong with a ``whsec_<base64>`` secret (never quoting it), or None.

    A short key would make every signature guessable: at least 24 bytes.
    """
    raw = secret.removeprefix("whsec_")
    try:  # padding optional, as the Standard Webhooks libraries read it
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return f"{name} is not a valid whsec_<base64> secret"
    if len(key) < MIN_WEBHOOK_KEY_BYTES:
        return (
            f"{name} has a {len(key)}-byte key; at least {MIN_WEBHOOK_KEY_BYTES} random bytes are "
            "needed (e.g. whsec_$(head -c 32 /dev/urandom | base64))"
        )
    return None


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "support-agent"


def _default_sidecar() -> Path | None:
    path = SOURCE_ROOT / "setup" / "hatchet-sidecar"
    return path if path.is_file() else None


def _env(name: str, field: str) -> AliasChoices:
    """Read ``name`` from the environment; ``field`` still works as a keyword argument."""
    return AliasChoices(name, field)


class EvidenceSettings(EvidenceLimits):
    """Where evidence is kept, for how long, and how much a ticket may bring."""

    store: Literal["local", "s3"] = Field(
        default="local",
        description="'local': a directory (one machine, or a shared file system); 's3': an "
        "S3-compatible bucket every worker reaches.",
    )
    dir: Path | None = Field(
        default=None, description="The local store's directory (default: <state dir>/evidence)."
    )
    s3_bucket: str | None = Field(default=None, description="The bucket (store=s3).")
    s3_prefix: str = Field(default="support-agent/", description="Key prefix in the bucket.")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="For S3-compatible services (SeaweedFS, MinIO, Ceph, R2, ...); unset: "
        "Amazon S3.",
    )
    s3_region: str | None = Field(default=None, description="The bucket's region.")
    s3_access_key_id: SecretStr | None = Field(
        default=None,
        description="Unset: boto3's own chain (AWS_ACCESS_KEY_ID, ~/.aws, an instance role).",
    )
    s3_secret_access_key: SecretStr | None = Field(default=None, description="Never logged.")
    retention_hours: float = Field(
        default=720,
        gt=0,
        description="How long a ticket's evidence is kept after it is submitted: match your "
        "engine's run retention (hatchet-lite keeps runs 30 days).",
    )
    sweep_interval_seconds: float = Field(
        default=3600, gt=0, description="How often a worker sweeps expired evidence."
    )
    sweep_grace_seconds: float = Field(
        default=3600,
        ge=0,
        description="Blobs younger than this are never swept (uploads in progress).",
    )


class Settings(BaseSettings):
    """Runtime configuration of the worker, the engine launcher and the CLI."""

    model_config = SettingsConfigDict(
        env_prefix="SUPPORT_AGENT_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
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
            "Execution timeout of the durable ticket task: a round's work and one wait for the"
            " customer (Hatchet keeps timing a waiting task). Defaults to the reply timeout (at"
            " least 48 h, the longest single wait) plus one hour."
        ),
    )
    ticket_retries: int = Field(
        default=3,
        ge=0,
        description="Attempts after a ticket's orchestration fails (a dropped engine connection "
        "fails the step in flight); each replays the durable log, repeating nothing finished.",
    )
    eviction_ttl_seconds: float = Field(
        default=300,
        gt=0,
        description="A ticket waiting this long is evicted from its worker until the wait ends.",
    )
    worker_name: str = Field(default="support-agent", description="Worker name in Hatchet.")
    # Hatchet's own default. The children are mostly waits on the network (the
    # model, a helpdesk): at 20, a burst of 100 tickets queued behind busy slots
    # (4.1 parked/s against 10.2 at 100). Containers are bounded apart from this,
    # by the sandbox (``SUPPORT_AGENT_SANDBOX__MAX_CONCURRENT_RUNS``).
    worker_slots: int = Field(default=100, ge=1, description="Concurrent non-durable tasks.")
    worker_durable_slots: int = Field(default=200, ge=1, description="Concurrent tickets.")
    engine_start_timeout_seconds: float = Field(
        default=300, gt=0, description="How long `engine start` waits for the engine to be ready."
    )

    # The engine.
    hatchet_token: SecretStr | None = Field(
        default=None,
        validation_alias=_env("HATCHET_CLIENT_TOKEN", "hatchet_token"),
        description="An external engine's API token (Hatchet Cloud or self-hosted); when set, "
        "no engine is started here and the SDK's HATCHET_CLIENT_* variables apply.",
    )
    engine_binary_path: Path | None = Field(
        default_factory=_default_sidecar,
        validation_alias=_env("HATCHET_CLIENT_EMBEDDED_BINARY_PATH", "engine_binary_path"),
        description="The embedded engine's sidecar (default: setup/hatchet-sidecar in this "
        "checkout).",
    )
    engine_database_url: SecretStr | None = Field(
        default=None,
        validation_alias=_env("HATCHET_CLIENT_EMBEDDED_DATABASE_URL", "engine_database_url"),
        description="PostgreSQL for the embedded engine (default: the database set-up created, "
        "whose URL and generated password it keeps in <state dir>/database-url).",
    )
    engine_grpc_port: int = Field(
        default=7077,
        ge=1,
        le=65535,
        validation_alias=_env("HATCHET_CLIENT_EMBEDDED_GRPC_PORT", "engine_grpc_port"),
        description="The embedded engine's gRPC port (127.0.0.1).",
    )
    engine_api_port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        validation_alias=_env("HATCHET_CLIENT_EMBEDDED_API_PORT", "engine_api_port"),
        description="The embedded engine's REST API port (127.0.0.1).",
    )

    # The agent.
    llm: Literal["claude", "offline"] = Field(
        default="claude",
        description="Who answers customers: Claude (needs ANTHROPIC_API_KEY; a worker without "
        "one refuses to start), or the offline planner, a deterministic rule-based stand-in "
        "whose replies say they are automated: chosen only on purpose.",
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("ANTHROPIC_API_KEY", "anthropic_api_key"),
        description="Claude's API key; never logged.",
    )
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=_env("ANTHROPIC_BASE_URL", "anthropic_base_url"),
        description="Another Messages API endpoint (a proxy, or the tests' fake).",
    )
    model: str = Field(default="claude-sonnet-5-5", description="Claude model id.")
    max_tokens: int = Field(default=4096, ge=256, description="Output tokens per model turn.")
    llm_timeout_seconds: float = Field(default=120, gt=0, description="One model call.")
    llm_retries: int = Field(default=4, ge=0, description="Hatchet retries of a failed turn.")
    llm_requests_per_minute: int = Field(
        default=50, ge=1, description="Shared Hatchet rate limit on model calls, all workers."
    )
    llm_rate_limit_key: str = Field(
        default=LLM_RATE_LIMIT_KEY,
        min_length=1,
        max_length=120,
        description="The Hatchet rate limit model calls count against: workers that share an "
        "API key (one quota) share it.",
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

    # The helpdesk connection: the HTTP API in, signed webhooks out.
    api_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks secret (whsec_<base64>) every request to the HTTP API "
        "must be signed with; `serve` refuses to start without it (unless --insecure-no-auth).",
    )
    api_host: str = Field(default="127.0.0.1", description="Where `serve` listens.")
    api_port: int = Field(default=8400, ge=1, le=65535, description="Where `serve` listens.")
    api_max_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Larger requests are refused (413) as they stream in (default: the "
        "ticket's evidence limit plus 16 MiB).",
    )
    delivery_url: str | None = Field(
        default=None,
        description="Where the agent's replies, resolutions and escalations are POSTed as "
        "signed JSON events; unset: not delivered (the worker says so at start).",
    )
    delivery_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks secret (whsec_<base64>) outbound events are signed with; "
        "required when SUPPORT_AGENT_DELIVERY_URL is set.",
    )
    delivery_timeout_seconds: float = Field(
        default=10, gt=0, description="One delivery attempt; Hatchet retries timeouts and 5xx."
    )

    # The sandbox (SUPPORT_AGENT_SANDBOX__MEMORY_MB=..., etc.).
    run_sandboxes: bool = Field(
        default=True, description="This worker runs code (it must reach a Docker daemon)."
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    # Evidence (SUPPORT_AGENT_EVIDENCE__MAX_FILE_BYTES=..., etc.).
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)

    @model_validator(mode="after")
    def _inputs_follow_the_ticket(self) -> Settings:
        """The sandbox takes whatever a ticket may bring: its input limits are derived."""
        self.sandbox = self.sandbox.model_copy(
            update={
                "max_input_files": self.evidence.max_input_files,
                "max_input_file_bytes": self.evidence.max_file_bytes,
                "max_input_total_bytes": self.evidence.max_input_bytes,
            }
        )
        return self

    @property
    def evidence_dir(self) -> Path:
        return self.evidence.dir or self.state_dir / "evidence"

    @property
    def api_body_limit(self) -> int:
        if self.api_max_body_bytes is not None:
            return self.api_max_body_bytes
        return self.evidence.max_ticket_bytes + 16 * MIB

    @property
    def evidence_retention(self) -> timedelta:
        return timedelta(hours=self.evidence.retention_hours)

    @property
    def external_engine(self) -> bool:
        """An external engine is configured: nothing is started or built here."""
        return self.hatchet_token is not None and bool(self.hatchet_token.get_secret_value())

    def database_url(self) -> str:
        """The embedded engine's database URL: the variable's, or the one set-up wrote.

        Read when an engine starts, not when settings load: commands that
        never start one work without a database.
        """
        if self.engine_database_url is not None:
            return self.engine_database_url.get_secret_value()
        path = self.state_dir / DATABASE_URL_FILE
        try:
            url = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            url = ""
        except OSError as exc:  # e.g. written by a set-up run as another user
            raise ConfigurationError(
                f"cannot read the engine's database URL from {path}: {exc.strerror}; "
                "set HATCHET_CLIENT_EMBEDDED_DATABASE_URL"
            ) from exc
        if not url:
            raise ConfigurationError(
                f"no database for the engine: {path} is missing (run `make setup`, which makes "
                "the database and writes it), or set HATCHET_CLIENT_EMBEDDED_DATABASE_URL"
            )
        return url

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
        # A round's work plus its longest wait: the reply timeout, or a wait slice
        # for a ticket whose own reply timeout is longer than this worker's.
        longest_wait = max(self.reply_timeout, timedelta(seconds=WAIT_SLICE_SECONDS))
        return longest_wait + timedelta(hours=1)
