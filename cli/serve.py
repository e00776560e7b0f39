"""``support-agent serve``: the HTTP API for helpdesks (see ``api``)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from typing import Any

from workflows.settings import Settings


def add_serve_parser(commands: argparse._SubParsersAction[Any]) -> None:
    p = commands.add_parser(
        "serve",
        help="serve the HTTP API for helpdesks",
        description="Serve the HTTP API (tickets, replies, status) with its OpenAPI document at "
        "/openapi.json. Every request under /v1/ must be signed with SUPPORT_AGENT_API_SECRET "
        "(Standard Webhooks).",
    )
    p.add_argument(
        "--host", default=None, help="bind address (default: SUPPORT_AGENT_API_HOST, 127.0.0.1)"
    )
    p.add_argument("--port", type=_port, default=None, help="default: SUPPORT_AGENT_API_PORT, 8400")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="accept unsigned requests: for local trials on a loopback address only",
    )
    p.set_defaults(handler=serve)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port from 1 to 65535: {value!r}")
    return port


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    host = args.host or settings.api_host
    port = args.port or settings.api_port
    if args.insecure_no_auth and not _loopback(host):
        raise ValueError(f"--insecure-no-auth only on a loopback address, not {host}")
    app = create_app(settings, insecure_no_auth=args.insecure_no_auth)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    auth = (
        "UNSIGNED requests accepted (--insecure-no-auth)"
        if args.insecure_no_auth
        else ("Standard Webhooks signatures required")
    )
    log = logging.getLogger("support_agent.api")
    log.info("serving on http://%s:%d; %s", host, port, auth)
    if not _loopback(host):
        log.warning(
            "listening beyond this host on plain HTTP: put a TLS proxy in front (the signature "
            "does not hide tickets, and a captured request can be replayed for 5 minutes)"
        )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
