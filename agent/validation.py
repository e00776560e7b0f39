"""Input rules with messages a person can act on, shared by every way a ticket enters.

The models in ``agent.tickets`` and ``agent.attachments`` use these types, so
the command line, the HTTP API and Python callers get the same checks and
the same one-line messages ("the body is empty", "not a valid ticket id:
...") from one place. A rule's message is raised as a ``PydanticCustomError``
of type ``input``: ``first_error`` shows it as it is, and prefixes pydantic's
own messages (wrong types, missing fields) with the field they concern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import AfterValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

INPUT_ERROR = "input"


def refuse(message: str) -> PydanticCustomError:
    # Braces would be read as template fields by pydantic-core.
    return PydanticCustomError(INPUT_ERROR, message.replace("{", "(").replace("}", ")"))


def check_storable(what: str, value: str) -> str:
    """``value`` if the engine can store it, else the input error saying why not."""
    if "\x00" in value:
        # Never storable: the engine's payloads (Postgres JSONB) refuse NUL.
        raise refuse(f"the {what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse(f"the {what} is not valid Unicode text (a lone surrogate)") from None
    return value


def storable_rule(what: str) -> AfterValidator:
    """Text kept exactly as given (code), but only if the engine can store it."""
    return AfterValidator(lambda value: check_storable(what, value))


def text_rule(what: str, limit: int) -> AfterValidator:
    """Text that is stripped, not empty, and at most ``limit`` characters."""

    def check(value: str) -> str:
        stripped = check_storable(what, value).strip()
        if not stripped:
            raise refuse(f"the {what} is empty")
        if len(stripped) > limit:
            raise refuse(f"the {what} is {len(stripped)} characters; the limit is {limit}")
        return stripped

    return AfterValidator(check)


def text_schema(limit: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "minLength": 1, "maxLength": limit})


def pattern_rule(pattern: str, message: Callable[[str], str]) -> AfterValidator:
    """A string matching ``pattern``; ``message(value)`` says what is wrong and what is allowed."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        # fullmatch: with match, "$" also matches before a trailing newline, and
        # a ticket id "T-1\n" would reach a CEL string literal it breaks.
        if not compiled.fullmatch(value):
            raise refuse(message(value))
        return value

    return AfterValidator(check)


def pattern_schema(pattern: str, max_length: int) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "maxLength": max_length})


def first_error(exc: ValidationError) -> str:
    """The first problem as one line: our rules' own words, or 'field: pydantic's words'."""
    error = exc.errors()[0]
    if error["type"] == INPUT_ERROR:
        return str(error["msg"])
    where = field_of(error)
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def field_of(error: Any) -> str:
    """The dotted path of the field an error concerns ('' for the whole input)."""
    return ".".join(str(part) for part in error["loc"])
