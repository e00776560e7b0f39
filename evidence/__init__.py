"""Customer evidence (logs, bundles, exports) kept outside the engine's payloads.

Tickets carry only references (name, media type, size, sha256, a bounded
preview); the bytes live in an ``EvidenceStore`` every worker can read: a
local directory by default, or an S3-compatible bucket for several machines.
No Hatchet, no Docker, no LLM here: ``workflows`` wires a store into the
worker, the command line and the HTTP API.
"""

from evidence.archives import ArchiveLimits
from evidence.ingest import EvidenceRefusedError, IngestResult, Upload, ingest, ingest_bytes
from evidence.limits import EvidenceLimits
from evidence.store import (
    EvidenceCorruptError,
    EvidenceError,
    EvidenceMissingError,
    EvidenceStore,
    LocalStore,
    MemoryStore,
    StoreUnavailableError,
)

__all__ = [
    "ArchiveLimits",
    "EvidenceCorruptError",
    "EvidenceError",
    "EvidenceLimits",
    "EvidenceMissingError",
    "EvidenceRefusedError",
    "EvidenceStore",
    "IngestResult",
    "LocalStore",
    "MemoryStore",
    "StoreUnavailableError",
    "Upload",
    "ingest",
    "ingest_bytes",
]
