"""Ticket attachments as references: identity, facts and a bounded preview, never content.

Attachments are untrusted customer data kept in the evidence store (see the
``evidence`` package): a ticket carries each file's name, media type, size,
sha256, line count and a head-and-tail preview, and for an archive the list
of files it unpacked to. Code runs get the bytes from the store by sha256,
verified as they stream. Names become file names in the sandbox, so only
plain, portable names are accepted here (the sandbox checks again at its
own boundary).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agent.validation import pattern_rule, pattern_schema, refuse

# Ceilings of the model itself; the configurable limits (EvidenceLimits) are
# checked where evidence is ingested, and are lower.
MAX_ATTACHMENTS = 1000
MAX_PREVIEW_CHARS = 65536
MAX_LISTED_SKIPS = 20
UNPACKED_SUFFIX = ".d"

# A leading letter or digit, then letters, digits, dot, dash, underscore: no
# separators, no "..", no hidden files, nothing a shell or tar treats specially.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def _bad_name(name: str) -> str:
    return (
        f"attachment name {name[:200]!r} is not allowed: rename the file to start with a letter "
        "or digit and use at most 128 letters, digits, '.', '_' or '-'"
    )


AttachmentName = Annotated[str, pattern_rule(_NAME, _bad_name), pattern_schema(_NAME, 128)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Preview = Annotated[str, StringConstraints(max_length=MAX_PREVIEW_CHARS)]


def is_valid_name(name: str) -> bool:
    return re.match(_NAME, name) is not None


class AttachmentRef(BaseModel):
    """An attachment's identity: what a reviewer and an escalation packet need."""

    model_config = ConfigDict(frozen=True)

    name: AttachmentName
    media_type: str
    size: int = Field(ge=0)
    sha256: Sha256


class EvidenceRef(BaseModel):
    """One file a code run receives: where under /work/input, and which blob."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(max_length=1024, description="Relative to /work/input.")
    size: int = Field(ge=0)
    sha256: Sha256


class UnpackedFile(BaseModel):
    """A regular file an archive unpacked to, with its facts and preview."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(max_length=1024, description="Inside the archive's directory.")
    media_type: str
    size: int = Field(ge=0)
    sha256: Sha256
    lines: int | None = None
    head: Preview = ""
    tail: Preview = ""


class ArchiveListing(BaseModel):
    """What an archive unpacked to, or why it was not unpacked."""

    model_config = ConfigDict(frozen=True)

    directory: str = Field(description="Relative to /work/input: '<archive name>.d'.")
    files: list[UnpackedFile] = Field(default_factory=list)
    skipped: list[str] = Field(
        default_factory=list, description="Members left out (links, devices, unsafe paths)."
    )
    skipped_count: int = 0
    error: str | None = Field(default=None, description="Why nothing was unpacked.")


class Attachment(AttachmentRef):
    """An attachment as a ticket carries it: reference, facts, preview; archives' listings."""

    lines: int | None = Field(default=None, description="None for binary files.")
    head: Preview = Field(default="", description="The first bytes, as text.")
    tail: Preview = Field(default="", description="The last bytes, as text ('' if all in head).")
    archive: ArchiveListing | None = None

    @property
    def ref(self) -> AttachmentRef:
        return AttachmentRef(
            name=self.name, media_type=self.media_type, size=self.size, sha256=self.sha256
        )

    def inputs(self) -> list[EvidenceRef]:
        """The files a code run receives for this attachment: it, and what it unpacked to."""
        files = [EvidenceRef(path=self.name, size=self.size, sha256=self.sha256)]
        if self.archive is not None:
            files += [
                EvidenceRef(path=f"{self.archive.directory}/{f.path}", size=f.size, sha256=f.sha256)
                for f in self.archive.files
            ]
        return files


def check_attachment_set(attachments: list[Attachment]) -> list[Attachment]:
    """Count and unique names (archives' directories included) of a ticket's attachments."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise refuse(f"{len(attachments)} attachments; the limit is {MAX_ATTACHMENTS}")
    names = [a.name for a in attachments]
    names += [a.archive.directory for a in attachments if a.archive is not None]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise refuse(f"duplicate attachment names: {', '.join(duplicates)}")
    return attachments


def evidence_inputs(attachments: list[Attachment]) -> list[EvidenceRef]:
    return [ref for a in attachments for ref in a.inputs()]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(data: bytes) -> str:
    """Bytes as text for a preview: invalid UTF-8 and control characters replaced."""
    return _CONTROL.sub("\ufffd", data.decode("utf-8", errors="replace"))
