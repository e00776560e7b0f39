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

from sandbox.config import MIB, SandboxConfig
from sandbox.errors import InvalidInputError
from sandbox.models import ExecutionRequest, InputFile, Language

# The slowest copy of inputs into a container allowed for (a store far away).
MIN_INPUT_BYTES_PER_SECOND = 4 * MIB
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
    def copy_seconds(self) -> float:
        """How long copying the inputs in may take, at the slowest rate allowed for.

        A container's supervisor waits for its request only so long: a large
        copy from a slow store must not outlast that wait (the run would end
        as a timeout without the code ever running).
        """
        return sum(f.size for f in self.files) / MIN_INPUT_BYTES_PER_SECOND

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


MAX_INPUT_DEPTH = 17
MAX_INPUT_PATH_BYTES = 1024


def validate_input_path(path: str, max_name_bytes: int = 128) -> None:
    """A relative path of safe components: an attachment, or a file its archive unpacked to.

    The first component is the attachment's own name (``max_name_bytes``);
    deeper ones come from archives and may use a file system's 255 bytes.
    """
    if "\\" in path:
        raise InvalidInputError(f"attachment name {ascii(path)[:80]} contains a path separator")
    parts = path.split("/")
    if len(parts) == 1:
        validate_input_name(path, max_name_bytes)
        return
    shown = ascii(path)[:80]
    if len(parts) > MAX_INPUT_DEPTH:
        raise InvalidInputError(f"input path {shown} is deeper than {MAX_INPUT_DEPTH} levels")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_INPUT_PATH_BYTES:
        raise InvalidInputError(f"input path {shown} is longer than {MAX_INPUT_PATH_BYTES} bytes")
    validate_input_name(parts[0], max_name_bytes)
    for part in parts[1:]:
        try:
            validate_input_name(part, 255)
        except InvalidInputError as exc:
            raise InvalidInputError(f"input path {shown}: {exc}") from None


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
    directories: set[str] = set()
    total = 0
    for item in files:
        validate_input_path(item.name, config.max_input_name_bytes)
        # Names that differ only in Unicode normalization look identical to
        # people and models; treat them as the duplicates they appear to be.
        key = unicodedata.normalize("NFC", item.name)
        parts = key.split("/")
        above = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if key in seen or key in directories or above & seen:
            raise InvalidInputError(f"attachment name {ascii(item.name)[:80]} is a duplicate")
        seen.add(key)
        directories |= above
        if item.size > config.max_input_file_bytes:
            raise InvalidInputError(
                f"attachment {ascii(item.name)[:80]} is {item.size} bytes;"
                f" the limit is {config.max_input_file_bytes}"
            )
        total += item.size
    if total > config.max_input_total_bytes:
        raise InvalidInputError(
            f"attachments total {total} bytes; the limit is {config.max_input_total_bytes}"
        )
    return PreparedRequest(
        request=request, code=code, timeout=config.effective_timeout(request.timeout_seconds)
    )
