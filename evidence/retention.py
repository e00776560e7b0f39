"""Evidence lives as long as its ticket's runs: holds expire, and a sweep deletes the rest.

Every submission writes a hold (ticket id, blobs, keep-until = submission +
retention). The sweep releases expired holds and deletes every blob no live
hold keeps, once it is older than a grace period: an upload in progress has
stored blobs but not yet written its hold, and must not lose them. Every
deletion is logged. Sweeps are idempotent, so several workers may run them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from evidence.store import EvidenceStore, LocalStore

log = logging.getLogger("support_agent.evidence")


@dataclass(frozen=True)
class SweepReport:
    holds_released: int
    blobs_deleted: int
    bytes_deleted: int
    blobs_kept: int

    def describe(self) -> str:
        return (
            f"released {self.holds_released} expired hold(s), deleted {self.blobs_deleted} "
            f"blob(s) ({self.bytes_deleted} bytes), kept {self.blobs_kept}"
        )


def sweep(
    store: EvidenceStore, *, grace_seconds: float, now: datetime | None = None
) -> SweepReport:
    moment = now or datetime.now(tz=UTC)
    live: set[str] = set()
    released = 0
    for hold in list(store.holds()):
        if hold.keep_until <= moment:
            store.delete_hold(hold)
            released += 1
            log.info(
                "evidence: hold %s of ticket %s expired (kept until %s); released",
                hold.hold_id,
                hold.ticket_id,
                hold.keep_until.isoformat(timespec="seconds"),
            )
        else:
            live |= hold.blobs
    cutoff = moment.timestamp() - grace_seconds
    deleted = kept = freed = 0
    for blob in list(store.blobs()):
        if blob.sha256 in live or blob.modified > cutoff:
            kept += 1
            continue
        store.delete(blob.sha256)
        deleted += 1
        freed += blob.size
        log.info(
            "evidence: deleted blob %s (%d bytes) from %s: no ticket holds it",
            blob.sha256,
            blob.size,
            store.description,
        )
    if isinstance(store, LocalStore):
        store.stale_temporaries(time.time() - grace_seconds)
    return SweepReport(released, deleted, freed, kept)
