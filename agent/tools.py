"""The tools Claude is given, their input schemas, and validation of what it sends.

Tool input comes from a model that has read untrusted text, so it is
validated like any other external input: a bad call becomes an error tool
result the model can correct, never an exception in the workflow.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agent.validation import storable_rule, text_rule, text_schema

RUN_CODE = "run_code"
REPLY = "reply_to_customer"
ESCALATE = "escalate_to_human"
MAX_PURPOSE = 500


# The model has read untrusted text: what it writes gets the checks a
# customer's text gets (stripped, never blank, never a NUL the engine cannot store).
Purpose = Annotated[str, text_rule("purpose", MAX_PURPOSE), text_schema(MAX_PURPOSE)]
ReplyText = Annotated[str, text_rule("message", 20_000), text_schema(20_000)]
Finding = Annotated[str, text_rule("finding", 2000), text_schema(2000)]
Reason = Annotated[str, text_rule("reason", 2000), text_schema(2000)]
Hypothesis = Annotated[str, text_rule("hypothesis", 2000), text_schema(2000)]


class RunCode(BaseModel):
    """Run a diagnostic script in a fresh sandbox with the ticket's attachments."""

    model_config = ConfigDict(extra="forbid")

    language: Literal["python", "bash"] = Field(description="Interpreter for the code.")
    code: Annotated[
        str, StringConstraints(min_length=1, max_length=50_000), storable_rule("code")
    ] = Field(
        description="The complete script. Attachments are read-only in /work/input/; "
        "write files worth keeping to /work/output/. No network."
    )
    purpose: Purpose = Field(
        description="One sentence: what this run checks and why (shown to reviewers)."
    )


class ReplyToCustomer(BaseModel):
    """Send the customer a reply; ends this round of diagnosis."""

    model_config = ConfigDict(extra="forbid")

    message: ReplyText = Field(
        description="The reply, in plain language, grounded in what the code showed."
    )
    findings: list[Finding] = Field(
        default_factory=list,
        max_length=20,
        description="Short factual findings backing the reply, for the ticket record.",
    )
    resolved: bool = Field(
        default=False,
        description="True only when the customer has confirmed the problem is solved; "
        "the ticket closes after this message.",
    )


class EscalateToHuman(BaseModel):
    """Hand the ticket to a human engineer with what was found so far."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason = Field(description="Why a human is needed.")
    hypotheses: list[Hypothesis] = Field(
        default_factory=list, max_length=20, description="What you suspect, most likely first."
    )


ToolInput = RunCode | ReplyToCustomer | EscalateToHuman

_MODELS: dict[str, type[ToolInput]] = {
    RUN_CODE: RunCode,
    REPLY: ReplyToCustomer,
    ESCALATE: EscalateToHuman,
}
FINISHING_TOOLS = frozenset({REPLY, ESCALATE})


class ToolInputError(ValueError):
    """The model called a tool that does not exist or with invalid input."""


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def tool_definitions() -> list[dict[str, Any]]:
    """The tools in the Messages API format, in a fixed order (prompt caching needs stability).

    A fresh copy each call (callers may mark one for caching), of a JSON text
    built once: pydantic rebuilt the schemas on every model turn.
    """
    return cast(list[dict[str, Any]], json.loads(_tool_definitions_json()))


@functools.cache
def _tool_definitions_json() -> str:
    return json.dumps(
        [
            {
                "name": name,
                "description": (model.__doc__ or "").strip(),
                "input_schema": _schema(model),
            }
            for name, model in _MODELS.items()
        ]
    )


def parse_tool_call(name: str, arguments: object) -> ToolInput:
    model = _MODELS.get(name)
    if model is None:
        raise ToolInputError(f"unknown tool {name!r}; available: {', '.join(_MODELS)}")
    if not isinstance(arguments, dict):
        raise ToolInputError(f"{name}: input must be a JSON object")
    try:
        return model.model_validate(arguments)
    except ValidationError as exc:
        # Sorted: pydantic reports extra keys in the order of the model's input,
        # which the engine does not keep, and this text must be the same on replay.
        problems = "; ".join(
            sorted(
                f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
                for err in exc.errors()
            )
        )
        raise ToolInputError(f"{name}: invalid input: {problems}") from exc
