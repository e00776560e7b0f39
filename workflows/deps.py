"""The side-effecting services child tasks use, behind the agent's and sandbox's protocols.

A worker builds one ``Dependencies``; tests can build one from fakes
(``ScriptedLLM``, ``FakeSandbox``) without patching any import path.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hatchet_sdk import Hatchet

from agent.attachments import AttachmentRef
from agent.llm import LLM
from agent.planner import OfflinePlanner
from sandbox import InputFile, Sandbox
from workflows.delivery import Deliverer, describe_url
from workflows.settings import ConfigurationError, Settings


class AttachmentUnavailableError(RuntimeError):
    """An attachment's content could not be found or did not match its hash."""


class AttachmentLoader:
    """Materialises attachment content for a code run, by sha256.

    The content lives in the ticket run's own input, held by the engine, so
    any worker on any host can fetch it without shared storage. A bounded
    in-memory cache (content-addressed, so never stale) avoids fetching the
    same ticket's files for every code run.
    """

    def __init__(
        self,
        fetch_run_input: Callable[[str], Awaitable[dict[str, object]]],
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._fetch = fetch_run_input
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._lock = asyncio.Lock()

    @classmethod
    def from_hatchet(cls, hatchet: Hatchet) -> AttachmentLoader:
        async def fetch(run_id: str) -> dict[str, object]:
            details = await hatchet.runs.aio_get(run_id)
            payload = details.run.input or {}
            # A standalone task's input is wrapped as {"input": ..., "parents": ...}.
            inner = payload.get("input", payload)
            return inner if isinstance(inner, dict) else {}

        return cls(fetch)

    def _remember(self, sha256: str, data: bytes) -> None:
        self._cache[sha256] = data
        self._cache.move_to_end(sha256)
        while sum(len(v) for v in self._cache.values()) > self._cache_bytes:
            self._cache.popitem(last=False)

    async def load(self, refs: list[AttachmentRef], root_run_id: str) -> list[InputFile]:
        from agent.attachments import Attachment

        async with self._lock:
            missing = [r for r in refs if r.sha256 not in self._cache]
            if missing:
                run_input = await self._fetch(root_run_id)
                ticket = run_input.get("ticket")
                raw = ticket.get("attachments", []) if isinstance(ticket, dict) else []
                for item in raw:
                    attachment = Attachment.model_validate(item)  # verifies size and sha256
                    self._remember(attachment.sha256, attachment.data)
            files = []
            for ref in refs:
                data = self._cache.get(ref.sha256)
                if data is None:
                    raise AttachmentUnavailableError(
                        f"attachment {ref.name} ({ref.sha256[:12]}) not found in run {root_run_id}"
                    )
                files.append(InputFile(name=ref.name, data=data))
            return files


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
    attachments: AttachmentLoader
    # Set by the worker's lifespan (the sandbox's pool lives on the worker's loop).
    sandbox: Sandbox | None = None
    delivery: Deliverer | None = None

    def require_sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise RuntimeError("this worker has no sandbox (started with --no-sandbox?)")
        return self.sandbox
