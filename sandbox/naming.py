"""Container names and labels: how a sandbox container is found again.

Names are deterministic per (ticket, run, step), so a retried step meets the
leftover of its earlier attempt under the same name and removes it first.
Labels carry the ids and an expiry (unix time) by which the container has
stopped on its own; the reaper removes whatever is past it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")
_PART_CHARS = 20


def _part(value: str) -> str:
    cleaned = _UNSAFE.sub("-", value).strip("-._")
    return cleaned[:_PART_CHARS].rstrip("-._") or "x"


def container_name(ticket_id: str, run_id: str, step_id: str) -> str:
    """``sa-<ticket>-<step>-<hash>``, valid under Docker's name rules.

    The readable parts are sanitized and shortened; the hash of all three
    exact ids keeps names of different steps apart after that.
    """
    digest = hashlib.sha256("\0".join((ticket_id, run_id, step_id)).encode()).hexdigest()
    return f"sa-{_part(ticket_id)}-{_part(step_id)}-{digest[:12]}"


def pool_container_name() -> str:
    """A pool container's name until it is claimed and renamed."""
    return f"sa-pool-{secrets.token_hex(6)}"


class Labels:
    """Label keys under a prefix (``support-agent`` by default)."""

    def __init__(self, prefix: str) -> None:
        self.marker = f"{prefix}.sandbox"
        self.expires = f"{prefix}.sandbox.expires"
        self.ticket = f"{prefix}.sandbox.ticket"
        self.run = f"{prefix}.sandbox.run"
        self.step = f"{prefix}.sandbox.step"
        self.pool = f"{prefix}.sandbox.pool"

    @property
    def marker_filter(self) -> str:
        return f"{self.marker}=1"

    def for_container(
        self, expires_at: float, ids: tuple[str, str, str] | None = None
    ) -> dict[str, str]:
        """Labels of an execution's container (``ids``) or of a pool container (None)."""
        labels = {self.marker: "1", self.expires: str(int(expires_at) + 1)}
        if ids is None:
            labels[self.pool] = "1"
        else:
            labels[self.ticket], labels[self.run], labels[self.step] = ids
        return labels

    def expiry(self, labels: dict[str, str] | None) -> float | None:
        """The expiry of a container's labels; None if missing or garbled."""
        try:
            return float((labels or {})[self.expires])
        except (KeyError, ValueError):
            return None
