"""``support-agent dashboard``: where the dashboard is and how to log in."""

from __future__ import annotations

import argparse
import webbrowser
from typing import Any

from workflows.dashboard import dashboard_file, find_dashboard
from workflows.engine import EngineUnavailableError, connect, running_engine
from workflows.settings import Settings


def add_dashboard_parser(commands: argparse._SubParsersAction[Any]) -> None:
    p = commands.add_parser(
        "dashboard",
        help="print the dashboard's URL and how to log in",
        description="Print the Hatchet dashboard's URL (where reviewers read each script the "
        "agent ran and its output) and how to log in.",
    )
    p.add_argument("--open", action="store_true", help="also open it in a browser")
    p.add_argument(
        "--show-password", action="store_true", help="print the password instead of its file"
    )
    p.set_defaults(handler=show_dashboard)


def show_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    if settings.external_engine:
        hatchet = connect(settings)
        board = find_dashboard(settings, hatchet.tenant_id, hatchet.config.server_url)
    else:
        engine = running_engine(settings)
        if engine is None:
            raise EngineUnavailableError(
                "no Hatchet engine is running: start one with `support-agent engine start`"
            )
        board = find_dashboard(settings, engine.tenant_id, engine.api_url)
    if board is None:
        raise EngineUnavailableError(
            f"the engine serves no dashboard ({dashboard_file(settings)} is missing): "
            "run `make setup` and restart the engine"
        )
    print(f"dashboard: {board.base}/")
    if not board.built:
        print("  (no dashboard build is served: run `make setup`, then restart the engine)")
    if board.email is not None:
        print(f"  log in as {board.email}")
        if args.show_password:
            print(f"  password: {board.password() or '(unreadable)'}")
        else:
            print(f"  password: in {board.credentials_file} (mode 0600; or --show-password)")
    else:
        print("  log in with your engine's own accounts")
    print(f"  runs:     {board.base}/tenants/{board.tenant_id}/runs")
    if args.open:
        webbrowser.open(board.base + "/")
    return 0
