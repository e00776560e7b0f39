"""The side-effecting services child tasks use, behind the agent's and sandbox's protocols.

A worker builds one ``Dependencies``; tests can build one from fakes
(``ScriptedLLM``, ``FakeSandbox``, ``MemoryStore``) without patching any
import path.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.parse
from dataclasses import dataclass

from pydantic import SecretStr

from agent.attachments import EvidenceRef
from agent.llm import LLM
from agent.planner import OfflinePlanner
from evidence.store import (
    EvidenceCorruptError,
    EvidenceMissingError,
    EvidenceStore,
    LocalStore,
)
from sandbox import InputFile, Sandbox
from workflows.delivery import Deliverer, describe_url
from workflows.settings import ConfigurationError, Settings, webhook_secret_problem


class EvidenceGoneError(EvidenceMissingError):
    """A ticket's evidence is no longer in the store: its code runs cannot get it back."""


class EvidenceLoader:
    """Turns a code run's evidence references into sandbox inputs streamed from the store.

    Nothing is read here: each ``InputFile`` opens its blob when the sandbox
    copies it into the container, and the bytes are verified against their
    sha256 on the way. Only presence is checked first, so a ticket whose
    evidence was swept fails with a clear reason before any container exists.
    """

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store

    async def inputs(self, refs: list[EvidenceRef], ticket_id: str) -> list[InputFile]:
        sizes = await asyncio.to_thread(lambda: [self.store.size(r.sha256) for r in refs])
        missing = [r for r, size in zip(refs, sizes, strict=True) if size is None]
        if missing:
            more = f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else ""
            raise EvidenceGoneError(
                f"the evidence of ticket {ticket_id} is gone: {missing[0].path} (sha256 "
                f"{missing[0].sha256[:12]}){more} is no longer in the evidence store (deleted "
                "after its retention, or never stored)"
            )
        for ref, size in zip(refs, sizes, strict=True):
            if size != ref.size:
                raise EvidenceCorruptError(
                    f"evidence {ref.path} (sha256 {ref.sha256[:12]}) is stored with {size} bytes, "
                    f"not {ref.size}"
                )
        return [
            InputFile(
                name=ref.path,
                size=ref.size,
                source=functools.partial(self.store.read, ref.sha256, ref.size),
            )
            for ref in refs
        ]


def open_evidence_store(settings: Settings) -> EvidenceStore:
    """The store the settings name: a local directory, or an S3-compatible bucket."""
    config = settings.evidence
    if config.store == "local":
        return LocalStore(settings.evidence_dir)
    if not config.s3_bucket:
        raise ConfigurationError(
            "SUPPORT_AGENT_EVIDENCE__STORE=s3 needs SUPPORT_AGENT_EVIDENCE__S3_BUCKET"
        )
    from evidence.s3 import S3Store

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return S3Store.connect(
        config.s3_bucket,
        prefix=config.s3_prefix,
        endpoint_url=config.s3_endpoint_url,
        region=config.s3_region,
        access_key_id=secret(config.s3_access_key_id),
        secret_access_key=secret(config.s3_secret_access_key),
    )


def choose_llm(settings: Settings) -> LLM:
    """The planner that answers customers: Claude, or the offline planner chosen on purpose.

    Never a silent fallback: with ``llm=claude`` (the default) and no API key
    this refuses, so a production worker cannot end up answering real
    customers with canned, rule-based replies.
    """
    if settings.llm == "offline":
        return OfflinePlanner()
    if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
        raise ConfigurationError(
            "no ANTHROPIC_API_KEY: set it for Claude, or choose the offline planner on purpose "
            "with SUPPORT_AGENT_LLM=offline (rule-based, automated replies; not Claude)"
        )
    import anthropic

    from agent.anthropic_llm import AnthropicLLM

    # max_retries=0: Hatchet owns retries (durable, visible in the dashboard).
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
        max_retries=0,
        timeout=settings.llm_timeout_seconds,
    )
    return AnthropicLLM(client)


def choose_deliverer(settings: Settings) -> Deliverer | None:
    """Where replies, resolutions and escalations go; None when no URL is configured."""
    if not settings.delivery_url:
        return None
    if settings.delivery_secret is None or not settings.delivery_secret.get_secret_value():
        raise ConfigurationError(
            "SUPPORT_AGENT_DELIVERY_URL is set but SUPPORT_AGENT_DELIVERY_SECRET is not: "
            "outbound events are always signed (a whsec_<base64> secret)"
        )
    problem = webhook_secret_problem(
        "SUPPORT_AGENT_DELIVERY_SECRET", settings.delivery_secret.get_secret_value()
    )
    if problem is not None:
        raise ConfigurationError(problem)
    try:
        parts = urllib.parse.urlsplit(settings.delivery_url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises for a port out of range
    except ValueError:
        usable = False
    if not usable:  # said now, not retried at every delivery
        raise ConfigurationError(
            "SUPPORT_AGENT_DELIVERY_URL must be an http:// or https:// URL with a host (and a "
            "port from 1 to 65535, if any)"
        )
    try:
        return Deliverer(
            settings.delivery_url,
            settings.delivery_secret.get_secret_value(),
            timeout_seconds=settings.delivery_timeout_seconds,
        )
    except Exception as exc:  # a malformed secret: never echo it
        raise ConfigurationError(
            f"SUPPORT_AGENT_DELIVERY_SECRET is not a valid whsec_<base64> secret "
            f"({type(exc).__name__})"
        ) from None


def describe_delivery(deliverer: Deliverer | None) -> str:
    if deliverer is None:
        return "off (no SUPPORT_AGENT_DELIVERY_URL: replies are recorded, not sent anywhere)"
    return f"signed events to {describe_url(deliverer.url)}"


def describe_planner(llm: LLM) -> str:
    """Who answers customers, for a worker's start line."""
    if isinstance(llm, OfflinePlanner):
        return f"{llm.name} (rule-based; its replies say they are automated; not Claude)"
    return llm.name


@dataclass
class Dependencies:
    llm: LLM
    evidence: EvidenceLoader
    # Set by the worker's lifespan (the sandbox's pool lives on the worker's loop).
    sandbox: Sandbox | None = None
    delivery: Deliverer | None = None

    def require_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise RuntimeError("this worker has no sandbox (started with --no-sandbox?)")
        return self.sandbox
