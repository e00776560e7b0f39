"""What a caller sends to the sandbox and what comes back.

Results are plain, JSON-serializable pydantic models: they travel through
Hatchet as task outputs and end up, summarised, in the model's context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["python", "bash"]


@dataclass(frozen=True)
class InputFile:
    """One input file, placed read-only at ``/work/input/<name>``.

    ``name`` is a relative path: one component for an attachment, several
    for a file an archive unpacked to (``bundle.zip.d/logs/app.log``). The
    content is either ``data`` or, for real-size evidence, ``source``: a
    callable that returns the bytes as a stream of chunks, so a 200 MB log
    goes from its store into the container without ever being held whole.
    The stream must yield exactly ``size`` bytes (it may raise to abort the
    copy, e.g. when its content fails a hash check).

    The name is checked when the request runs (``InvalidInputError``), not
    here, so a hostile customer file name is a clear sandbox error rather than
    a validation failure wherever the request happens to be built.
    """

    name: str
    data: bytes = b""
    size: int = -1
    source: Callable[[], Iterable[bytes]] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.source is None:
            object.__setattr__(self, "size", len(self.data))
        elif self.size < 0:
            raise ValueError(f"input file {self.name!r}: a streamed file needs its size")

    def chunks(self) -> Iterable[bytes]:
        if self.source is None:
            return (self.data,) if self.data else ()
        return self.source()

    @classmethod
    def from_path(cls, name: str, path: Path) -> InputFile:
        """A local file, streamed when the container is filled (``sandbox run --attach``)."""

        def read() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(1024 * 1024):
                    yield chunk

        return cls(name=name, size=path.stat().st_size, source=read)


class ExecutionRequest(BaseModel):
    """One piece of code to run once, with its inputs and the ids it belongs to."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    code: str
    language: Language = "python"
    files: list[InputFile] = Field(default_factory=list)
    timeout_seconds: float | None = Field(
        default=None, gt=0, description="None: the config's default; capped at its maximum."
    )
    ticket_id: str = Field(max_length=200)
    run_id: str = Field(max_length=200)
    step_id: str = Field(max_length=200)


class OutputFile(BaseModel):
    """A file the code left in ``/work/output``, capped in size.

    ``text`` is set when the kept bytes are valid UTF-8, ``base64`` otherwise.
    """

    name: str
    size: int = Field(description="Size of the file in the container.")
    truncated: bool = Field(description="Only the first bytes of the file were kept.")
    text: str | None = None
    base64: str | None = None

    def describe(self) -> str:
        """One line: name, size, kind."""
        kind = "text" if self.text is not None else "binary"
        cut = ", truncated" if self.truncated else ""
        return f"{self.name} ({self.size} bytes, {kind}{cut})"


class ExecutionResult(BaseModel):
    """The outcome of one execution. Content is untrusted: it is the code's own output."""

    exit_code: int | None = Field(description="None when the code was killed at its timeout.")
    stdout: str
    stderr: str
    stdout_truncated_bytes: int = 0
    stderr_truncated_bytes: int = 0
    stdout_invalid_utf8: bool = False
    stderr_invalid_utf8: bool = False
    duration_seconds: float
    timed_out: bool = False
    oom_killed: bool = False
    output_files: list[OutputFile] = Field(default_factory=list)
    output_files_omitted: int = Field(default=0, description="Files left out by the caps.")
    container_name: str = ""
    from_pool: bool = False
    runtime: str = Field(
        default="", description="The OCI runtime that ran the code: 'runsc' is gVisor."
    )
    kernel: str = Field(
        default="",
        description="The kernel release the code saw: gVisor's own (4.4.0) under runsc.",
    )
    notes: list[str] = Field(default_factory=list, description="What the sandbox changed or saw.")

    def flags(self) -> list[str]:
        """What went wrong in the sandbox's terms: "timed out", "out of memory"."""
        return [
            flag
            for flag, on in (("timed out", self.timed_out), ("out of memory", self.oom_killed))
            if on
        ]

    def summary(self, max_chars: int = 8000) -> str:
        """A compact text rendering for an LLM tool result, at most ``max_chars`` long."""
        status = [f"exit code {self.exit_code}", f"{self.duration_seconds:.2f}s"]
        status += [f"{flag.upper()} (killed)" for flag in self.flags()]
        head = ["[" + ", ".join(status) + "]"]
        head.extend(f"note: {note}" for note in self.notes)
        files = ["  " + f.describe() for f in self.output_files]
        if self.output_files_omitted:
            files.append(f"({self.output_files_omitted} more not kept)")
        fixed = "\n".join(head) + ("\noutput files:\n" + "\n".join(files) if files else "")
        # The two streams share what is left; stderr usually says why it failed,
        # so it keeps up to half even when stdout is huge, and stdout gets the rest.
        budget = max(max_chars - len(fixed) - 40, 0)
        err_share = min(len(self.stderr), budget // 2)
        out_share = budget - err_share
        err_share = budget - min(len(self.stdout), out_share)
        parts = [fixed]
        if self.stdout:
            parts.append("--- stdout ---\n" + _clip(self.stdout, out_share))
        if self.stderr:
            parts.append("--- stderr ---\n" + _clip(self.stderr, err_share))
        return _clip("\n".join(parts), max_chars)


def _clip(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters."""
    if len(text) <= limit:
        return text
    note = f"\n[... {len(text) - limit} characters cut ...]\n"
    keep = max(limit - len(note), 0)
    return text[: keep - keep // 3] + note + text[len(text) - keep // 3 :] if keep else text[:limit]
