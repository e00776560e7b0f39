"""Checks every request before any container exists.

Attachment names come from customers, so they are hostile until proven
otherwise. The rule is an allow-list in spirit: a name is one plain path
component, printable, valid UTF-8, short, and unique. Anything else is refused
with a message that says which rule it broke (never silently renamed: a
renamed file would confuse the code that looks for it).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from sandbox.config import SandboxConfig
from sandbox.errors import InvalidInputError
from sandbox.models import ExecutionRequest, InputFile, Language

# Control, format (bidi overrides, zero-width), surrogate, line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class PreparedRequest:
    """A request that passed every check, with its effective timeout and encoded code."""

    request: ExecutionRequest
    code: bytes
    timeout: float

    @property
    def files(self) -> list[InputFile]:
        return self.request.files

    @property
    def language(self) -> Language:
        return self.request.language


def validate_input_name(name: str, max_bytes: int = 128) -> None:
    """Raise ``InvalidInputError`` unless ``name`` is a safe, single file name."""
    shown = ascii(name)[:80]
    if not name:
        raise InvalidInputError("attachment name is empty")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"attachment name {shown} is not valid UTF-8") from None
    if len(encoded) > max_bytes:
        raise InvalidInputError(f"attachment name {shown} is longer than {max_bytes} bytes")
    if "\x00" in name:
        raise InvalidInputError(f"attachment name {shown} contains a NUL byte")
    if name.startswith(("/", "\\")):
        raise InvalidInputError(f"attachment name {shown} is an absolute path")
    if "/" in name or "\\" in name:
        raise InvalidInputError(f"attachment name {shown} contains a path separator")
    if name in (".", ".."):
        raise InvalidInputError(f"attachment name {shown} is a relative path component")
    if name != name.strip():
        raise InvalidInputError(f"attachment name {shown} starts or ends with whitespace")
    for char in name:
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise InvalidInputError(
                f"attachment name {shown} contains a control or invisible character"
            )


def prepare_request(request: ExecutionRequest, config: SandboxConfig) -> PreparedRequest:
    """Validate names and sizes against ``config``; raise ``InvalidInputError`` if refused."""
    try:
        code = request.code.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("the code is not valid UTF-8") from None
    if len(code) > config.max_code_bytes:
        raise InvalidInputError(
            f"the code is {len(code)} bytes; the limit is {config.max_code_bytes}"
        )
    files = request.files
    if len(files) > config.max_input_files:
        raise InvalidInputError(f"{len(files)} attachments; the limit is {config.max_input_files}")
    seen: set[str] = set()
    total = 0
    for item in files:
        validate_input_name(item.name, config.max_input_name_bytes)
        # Names that differ only in Unicode normalization look identical to
        # people and models; treat them as the duplicates they appear to be.
        key = unicodedata.normalize("NFC", item.name)
        if key in seen:
            raise InvalidInputError(f"attachment name {ascii(item.name)[:80]} is a duplicate")
        seen.add(key)
        if len(item.data) > config.max_input_file_bytes:
            raise InvalidInputError(
                f"attachment {ascii(item.name)[:80]} is {len(item.data)} bytes;"
                f" the limit is {config.max_input_file_bytes}"
            )
        total += len(item.data)
    if total > config.max_input_total_bytes:
        raise InvalidInputError(
            f"attachments total {total} bytes; the limit is {config.max_input_total_bytes}"
        )
    return PreparedRequest(
        request=request, code=code, timeout=config.effective_timeout(request.timeout_seconds)
    )
