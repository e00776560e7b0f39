"""How much evidence a ticket may bring, in one validated model.

The defaults fit real tickets (a day of logs, a support bundle); the worker's
sandbox derives its input limits from the same numbers, so whatever a ticket
may carry, its code runs can read.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024
GIB = 1024 * MIB


class EvidenceLimits(BaseModel):
    """Caps on uploads and on what their archives unpack to; previews' sizes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_file_bytes: int = Field(default=200 * MIB, ge=1, description="One attachment.")
    max_ticket_bytes: int = Field(default=GIB, ge=1, description="All attachments of a ticket.")
    max_files: int = Field(default=50, ge=0, description="Attachments per ticket.")
    max_unpacked_bytes: int = Field(
        default=GIB, ge=0, description="What a ticket's archives unpack to, in all."
    )
    max_unpacked_files: int = Field(
        default=1000, ge=0, description="Files a ticket's archives unpack to, in all."
    )
    max_compression_ratio: int = Field(
        default=100,
        ge=2,
        description="An archive (or a zip member) unpacking to more than this many times its "
        "packed size is refused as a bomb (past the first MiB).",
    )
    preview_head_bytes: int = Field(default=2048, ge=0, le=65536)
    preview_tail_bytes: int = Field(default=1024, ge=0, le=65536)

    @property
    def max_input_files(self) -> int:
        """Files a code run may receive: attachments plus unpacked members."""
        return self.max_files + self.max_unpacked_files

    @property
    def max_input_bytes(self) -> int:
        """Bytes a code run may receive: attachments plus unpacked members."""
        return self.max_ticket_bytes + self.max_unpacked_bytes
