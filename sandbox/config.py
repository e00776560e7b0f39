"""Every limit of the sandbox, in one validated model whose defaults are all safe.

The library never reads the environment: ``workflows.settings`` builds this
model, so a setting has one name and one default.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024
# The runtime setting that picks gVisor wherever the daemon has it.
AUTO_RUNTIME = "auto"


class SandboxConfig(BaseModel):
    """Limits and knobs of the Docker sandbox (and of FakeSandbox's result shaping)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # What runs.
    image: str = Field(default="support-agent-sandbox:latest", min_length=1)
    runtime: str = Field(
        default=AUTO_RUNTIME,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description=(
            "OCI runtime: 'auto' is gVisor (runsc) where Docker has it registered, else"
            " Docker's default (runc); or a registered name, e.g. 'runc' or 'runsc'."
        ),
    )
    user: str = Field(
        default="10001:10001",
        pattern=r"^[1-9][0-9]*:[1-9][0-9]*$",
        description="Numeric uid:gid the code runs as; never root (0).",
    )

    # Resources of one container.
    memory_mb: int = Field(default=512, ge=32, description="Memory limit; swap is disabled.")
    cpus: float = Field(default=1.0, gt=0, le=64)
    pids: int = Field(default=128, ge=8, description="Processes and threads in the container.")
    file_size_limit_mb: int = Field(default=64, ge=1, description="ulimit fsize of every file.")
    open_files_limit: int = Field(default=256, ge=32, description="ulimit nofile.")
    tmp_size_mb: int = Field(default=64, ge=1, description="tmpfs for scratch at /tmp.")
    work_size_mb: int = Field(default=16, ge=1, description="tmpfs for /work (cwd, the code).")
    output_size_mb: int = Field(default=16, ge=1, description="tmpfs for /work/output.")
    tmpfs_inodes: int = Field(default=4096, ge=64, description="Files per tmpfs (nr_inodes).")

    # Time.
    timeout_seconds: float = Field(default=30, gt=0, description="Default wall-clock timeout.")
    max_timeout_seconds: float = Field(default=300, gt=0, description="Requests are capped here.")
    kill_grace_seconds: float = Field(
        default=5,
        gt=0,
        description=(
            "After the timeout the code is killed in the container and its output collected;"
            " if no report arrives within this grace the host removes the container."
        ),
    )
    startup_grace_seconds: float = Field(
        default=30, gt=0, description="How long a fresh container waits for its request."
    )

    # Output caps (also applied by FakeSandbox).
    stdout_limit_bytes: int = Field(default=64 * 1024, ge=256)
    stderr_limit_bytes: int = Field(default=32 * 1024, ge=256)
    max_output_files: int = Field(default=32, ge=0)
    max_output_file_bytes: int = Field(default=256 * 1024, ge=0)
    max_output_total_bytes: int = Field(default=1024 * 1024, ge=0)

    # Input caps. A worker's settings derive the three input limits from the
    # ticket's evidence limits (what a ticket may carry, its code can read);
    # these defaults apply to the library used on its own.
    max_code_bytes: int = Field(default=256 * 1024, ge=1)
    max_input_files: int = Field(default=32, ge=0, description="Files, unpacked ones included.")
    max_input_file_bytes: int = Field(default=16 * MIB, ge=0)
    max_input_total_bytes: int = Field(default=32 * MIB, ge=0)
    max_input_name_bytes: int = Field(default=128, ge=8, le=255)

    # Lifecycle.
    pool_size: int = Field(default=2, ge=0, description="Pre-started containers; 0 disables.")
    pool_idle_seconds: float = Field(
        default=300, gt=0, description="A pool container unused this long is replaced."
    )
    reaper_interval_seconds: float = Field(default=60, gt=0)
    orphan_grace_seconds: float = Field(
        default=60, gt=0, description="Stopped sandbox containers older than this are reaped."
    )
    max_concurrent_runs: int = Field(default=4, ge=1)
    label_prefix: str = Field(default="support-agent", pattern=r"^[a-z0-9][a-z0-9.-]*$")
    docker_timeout_seconds: int = Field(default=60, ge=1, description="Docker API call timeout.")

    @model_validator(mode="after")
    def _consistent(self) -> SandboxConfig:
        if self.timeout_seconds > self.max_timeout_seconds:
            raise ValueError("timeout_seconds must not exceed max_timeout_seconds")
        if self.max_output_total_bytes > self.output_size_mb * MIB:
            raise ValueError("max_output_total_bytes cannot exceed the output tmpfs size")
        return self

    def effective_timeout(self, requested: float | None) -> float:
        """The request's timeout, defaulted and capped at ``max_timeout_seconds``."""
        if requested is None:
            return self.timeout_seconds
        return min(requested, self.max_timeout_seconds)

    @property
    def marker_label(self) -> str:
        """The label every sandbox container carries (value "1")."""
        return f"{self.label_prefix}.sandbox"
