"""What a ``run-code`` task streams while it runs, as one typed model on both ends.

The task publishes one JSON line per event; ``watch`` parses the same model.
Anything that does not parse (another producer's text, a truncated chunk)
is ignored by readers: streams only bring output early, the task's recorded
output stays the source of truth.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

STDOUT_TAIL = 4000
STDERR_TAIL = 2000


class CodeStarted(BaseModel):
    event: Literal["code-start"] = "code-start"
    step: int
    purpose: str


class CodeFinished(BaseModel):
    event: Literal["code-output"] = "code-output"
    step: int
    stdout: str = Field(description=f"The last {STDOUT_TAIL} characters.")
    stderr: str = Field(description=f"The last {STDERR_TAIL} characters.")
    exit_code: int | None


CodeEvent = Annotated[CodeStarted | CodeFinished, Field(discriminator="event")]
_EVENT: TypeAdapter[CodeStarted | CodeFinished] = TypeAdapter(CodeEvent)


def encode(event: CodeStarted | CodeFinished) -> str:
    """One line of the stream."""
    return event.model_dump_json() + "\n"


def decode(chunk: str) -> list[CodeStarted | CodeFinished]:
    """The events in a chunk of the stream; lines that are not events are skipped."""
    events = []
    for line in chunk.splitlines():
        try:
            events.append(_EVENT.validate_json(line))
        except ValidationError:
            continue
    return events
