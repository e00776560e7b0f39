"""Where a reviewer reads a ticket's runs: the dashboard's address, login and links.

The embedded engine writes ``dashboard.json`` into the state directory while
it runs (URL, whether a build is served, and the path of the generated login,
a 0600 file). With an external engine the dashboard is the engine's own
server URL and its login is the engine operator's business.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from workflows.settings import Settings

# The run list keeps its filters in this query parameter (the dashboard's own URL state).
RUN_FILTERS = "workflow-runs-main-workflow-runs-filters"


@dataclass(frozen=True)
class Dashboard:
    url: str
    tenant_id: str
    built: bool = True
    email: str | None = None
    credentials_file: Path | None = None

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    def run_url(self, run_id: str) -> str:
        """A run's page; a task run's id opens that task (its input, output and logs)."""
        return f"{self.base}/tenants/{self.tenant_id}/runs/{run_id}"

    def ticket_url(self, ticket_id: str) -> str:
        """The run list filtered to a ticket (children carry its ``ticket_id`` metadata)."""
        filters = json.dumps({"m": [f"ticket_id:{ticket_id}"], "tw": "7d"}, separators=(",", ":"))
        query = urllib.parse.quote(filters, safe="")
        return f"{self.base}/tenants/{self.tenant_id}/runs?{RUN_FILTERS}={query}"

    def password(self) -> str | None:
        if self.credentials_file is None:
            return None
        try:
            return str(json.loads(self.credentials_file.read_text())["password"])
        except (OSError, ValueError, KeyError):
            return None


def dashboard_file(settings: Settings) -> Path:
    return settings.state_dir / "dashboard.json"


def find_dashboard(settings: Settings, tenant_id: str, server_url: str) -> Dashboard | None:
    """The dashboard for this client, or None when the embedded engine serves none."""
    if settings.external_engine:
        return Dashboard(url=server_url, tenant_id=tenant_id)
    try:
        info = json.loads(dashboard_file(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None  # not what the sidecar writes: as if there were none
    credentials = info.get("credentials_file")
    return Dashboard(
        url=str(info["url"]),
        tenant_id=tenant_id,
        built=bool(info.get("built", False)),
        email=info.get("email"),
        credentials_file=Path(credentials) if credentials else None,
    )
