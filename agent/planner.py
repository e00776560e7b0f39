"""The offline planner: a deterministic stand-in for Claude when no API key is set.

It is a fallback, not a pretend Claude. It speaks the same LLM protocol and
therefore runs through the same child tasks and sandbox: on a fresh ticket it
writes one real diagnostic script per attachment (log error grouping, JSON
validation, CSV profiling, config checks), and once the scripts have run it
composes the reply from the ``FINDING:`` lines they printed. Replies say they
come from automated checks.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from agent.diagnostics import EvidenceFile, script_for
from agent.llm import TextSink, TurnRequest, TurnResult, Usage
from agent.tools import ESCALATE, MAX_PURPOSE, REPLY, RUN_CODE

MAX_SCRIPTS = 6
_FINDING = re.compile(r"^FINDING: (.+)$", re.M)
_THANKS = re.compile(r"\b(works?|working|fixed|solved|resolved|thanks?|thank you)\b", re.I)
_STILL = re.compile(r"\b(still|again|not|doesn'?t|didn'?t|won'?t|no luck|same)\b", re.I)


AUTOMATED_NOTICE = (
    "(This reply was written automatically from the results of diagnostic scripts, "
    "without a person or a language model.)"
)


def automated(message: str) -> str:
    """Every reply the planner composes says it is automated: it never passes for a person."""
    return f"{message}\n\n{AUTOMATED_NOTICE}"


def _tool_use(name: str, arguments: dict[str, Any], seed: str) -> dict[str, Any]:
    digest = hashlib.sha256(f"{seed}:{name}:{arguments}".encode()).hexdigest()[:20]
    return {"type": "tool_use", "id": f"toolu_off_{digest}", "name": name, "input": arguments}


def _last_user_blocks(request: TurnRequest) -> list[dict[str, Any]]:
    for message in reversed(request.messages):
        if message["role"] == "user":
            content = message["content"]
            return content if isinstance(content, list) else [{"type": "text", "text": content}]
    return []


def _customer_reply_text(blocks: list[dict[str, Any]]) -> str | None:
    for block in blocks:
        text = block.get("text", "")
        if block.get("type") == "text" and "The customer replied" in text:
            match = re.search(r'id="[0-9a-f]+">\n(.*)\n</untrusted-data', text, re.S)
            return match.group(1) if match else text
    return None


class OfflinePlanner:
    """Implements ``agent.llm.LLM`` without a model."""

    name = "offline-planner"

    async def complete(self, request: TurnRequest, on_text: TextSink | None = None) -> TurnResult:
        blocks = _last_user_blocks(request)
        seed = f"{request.ticket_id}:{len(request.messages)}"
        results = [b for b in blocks if b.get("type") == "tool_result"]
        reply_text = _customer_reply_text(blocks)
        if reply_text is not None:
            content = self._answer_customer(reply_text, seed)
        elif results:
            content = self._report(results, seed)
        else:
            content = self._first_look(request, seed)
        text = "".join(b.get("text", "") for b in content if b["type"] == "text")
        if on_text is not None and text:
            await on_text(text)
        return TurnResult(
            planner=self.name,
            content=content,
            stop_reason="tool_use",
            usage=Usage(),
        )

    def _first_look(self, request: TurnRequest, seed: str) -> list[dict[str, Any]]:
        refs = [EvidenceFile.model_validate(a) for a in request.attachments][:MAX_SCRIPTS]
        if not refs:
            message = (
                "Thanks for the details. Our automated checks need evidence to work with: "
                "please reply with the relevant logs, configuration files or data exports "
                "attached, and we will analyse them right away."
            )
            return [
                {"type": "text", "text": "No attachments to analyse; asking for evidence."},
                _tool_use(REPLY, {"message": automated(message), "findings": []}, seed),
            ]
        calls = []
        for ref in refs:
            language, code, purpose = script_for(ref)
            if len(purpose) > MAX_PURPOSE:  # a deep archive path: keep the call valid
                purpose = purpose[: MAX_PURPOSE - 1] + "…"
            calls.append(
                _tool_use(
                    RUN_CODE,
                    {"language": language, "code": code, "purpose": purpose},
                    f"{seed}:{ref.sha256}",
                )
            )
        names = ", ".join(r.name for r in refs)
        return [{"type": "text", "text": f"Running automated checks on {names}."}, *calls]

    def _report(self, results: list[dict[str, Any]], seed: str) -> list[dict[str, Any]]:
        findings: list[str] = []
        failures = 0
        for result in results:
            content = result.get("content", "")
            text = (
                content
                if isinstance(content, str)
                else " ".join(c.get("text", "") for c in content)
            )
            found = _FINDING.findall(text)
            findings.extend(found)
            if result.get("is_error") or not found:
                failures += 1
        if not findings:
            reason = "the automated checks produced no usable findings"
            return [_tool_use(ESCALATE, {"reason": reason, "hypotheses": []}, seed)]
        bullet_list = "\n".join(f"- {f}" for f in findings)
        message = (
            "Hi,\n\nWe ran automated checks on the files you sent. This is what they found:\n\n"
            f"{bullet_list}\n\nThese point to where the problem is. If you fix the items above "
            "and it still fails, reply with the new logs and we will look again.\n\n"
            "(Automated analysis; a support engineer reviews follow-ups.)"
        )
        if failures:
            message += f"\n\nNote: {failures} check(s) could not complete."
        return [_tool_use(REPLY, {"message": automated(message), "findings": findings}, seed)]

    def _answer_customer(self, reply: str, seed: str) -> list[dict[str, Any]]:
        if _THANKS.search(reply) and not _STILL.search(reply):
            message = "Great to hear it works now. We are closing this ticket; reply any time."
            return [_tool_use(REPLY, {"message": automated(message), "resolved": True}, seed)]
        reason = "the customer still has the problem after the automated diagnosis"
        return [_tool_use(ESCALATE, {"reason": reason, "hypotheses": []}, seed)]
