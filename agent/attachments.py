"""Ticket attachments: size-capped, content-addressed, safely named.

Attachments are untrusted customer data. Their names become file names in
the sandbox, so only plain, portable names are accepted here (the sandbox
checks again at its own boundary). The sha256 makes them content-addressed:
code runs refer to an attachment by hash, and the content is verified
wherever it is materialised.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agent.validation import pattern_rule, pattern_schema, refuse

MAX_ATTACHMENT_BYTES = 512 * 1024
MAX_TOTAL_ATTACHMENT_BYTES = 2 * 1024 * 1024
MAX_ATTACHMENTS = 10

# A leading letter or digit, then letters, digits, dot, dash, underscore: no
# separators, no "..", no hidden files, nothing a shell or tar treats specially.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
def _bad_name(name: str) -> str:
    return (
        f"attachment name {name[:200]!r} is not allowed: rename the file to start with a letter "
        "or digit and use at most 128 letters, digits, '.', '_' or '-'"
    )


AttachmentName = Annotated[str, pattern_rule(_NAME, _bad_name), pattern_schema(_NAME, 128)]

_TEXT_TYPES = {
    ".log": "text/plain",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".json": "application/json",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".ini": "text/plain",
    ".conf": "text/plain",
    ".cfg": "text/plain",
    ".env": "text/plain",
    ".xml": "application/xml",
}


def guess_media_type(name: str) -> str:
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    return _TEXT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class AttachmentRef(BaseModel):
    """What a code run needs to know about an attachment: no content, just identity."""

    model_config = ConfigDict(frozen=True)

    name: AttachmentName
    media_type: str
    size: int = Field(ge=0, le=MAX_ATTACHMENT_BYTES)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Attachment(AttachmentRef):
    """An attachment with its content (base64, so it travels in JSON payloads)."""

    content_b64: str

    @classmethod
    def from_bytes(cls, name: str, data: bytes, media_type: str | None = None) -> Attachment:
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise ValueError(
                f"attachment {name!r} is {len(data)} bytes; the limit is {MAX_ATTACHMENT_BYTES}"
            )
        return cls(
            name=name,
            media_type=media_type or guess_media_type(name),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content_b64=base64.b64encode(data).decode("ascii"),
        )

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.content_b64, validate=True)

    @property
    def ref(self) -> AttachmentRef:
        return AttachmentRef(
            name=self.name, media_type=self.media_type, size=self.size, sha256=self.sha256
        )

    @model_validator(mode="after")
    def _content_matches(self) -> Self:
        try:
            data = self.data
        except ValueError as exc:
            raise ValueError(f"attachment {self.name!r}: content is not valid base64") from exc
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError(f"attachment {self.name!r}: content does not match its size/sha256")
        return self


def check_attachment_set(attachments: list[Attachment]) -> list[Attachment]:
    """Count, total size and unique names of a ticket's attachments."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise refuse(f"{len(attachments)} attachments; the limit is {MAX_ATTACHMENTS}")
    total = sum(a.size for a in attachments)
    if total > MAX_TOTAL_ATTACHMENT_BYTES:
        raise refuse(f"attachments total {total} bytes; the limit is {MAX_TOTAL_ATTACHMENT_BYTES}")
    names = [a.name for a in attachments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise refuse(f"duplicate attachment names: {', '.join(duplicates)}")
    return attachments


def is_probably_text(data: bytes) -> bool:
    if b"\x00" in data[:4096]:
        return False
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 4096 boundary is still text.
        return exc.start >= 4090
    return True


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def preview(data: bytes, limit: int = 1500) -> str:
    """The first bytes as printable text, for the prompt (the model reads the rest with code)."""
    if not is_probably_text(data):
        return f"<binary, {len(data)} bytes>"
    text = data[:limit].decode("utf-8", errors="replace")
    text = _CONTROL.sub("\ufffd", text)
    if len(data) > limit:
        text += f"\n... ({len(data) - limit} more bytes)"
    return text
