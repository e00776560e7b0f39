"""Follow a ticket run live: poll its record, subscribe to each child's stream.

Streams are fan-out only: a subscription covers one run id, and what a child
published before the subscription began is lost. So the REST record is the
source of truth (every finished child is printed from it) and the streams
only bring a running child's text and output early.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from hatchet_sdk import Hatchet

from cli.render import Terminal, TranscriptPrinter, status_change_line, status_line
from workflows.models import RunStatus
from workflows.transcript import RunReader, ScriptEntry, Transcript, TurnEntry

POLL_SECONDS = 0.5
TICK_SECONDS = 0.1
SETTLE_SECONDS = 5.0
# Off a terminal, a line announces only the states in which nothing else is printed.
QUIET_STATES = frozenset({"queued", "waiting"})


@dataclass
class Progress:
    """The progress indication: an animated status line on a terminal, else a line on waits."""

    term: Terminal
    announce_changes: bool = True
    _frame: int = 0
    _last: str | None = field(default=None, init=False)

    def show(self, t: Transcript) -> None:
        if self.term.live:
            self._frame += 1
            self.term.status(status_line(t, self._frame))
        elif self.announce_changes and t.status != self._last and t.status in QUIET_STATES:
            self.term.line(status_change_line(t, self.term.style))
        self._last = t.status

    def clear(self) -> None:
        self.term.clear_status()
        self.term.stream.flush()


async def _pump(hatchet: Hatchet, run_id: str, queue: asyncio.Queue[tuple[str, str]]) -> None:
    # A lost stream costs only liveness: the REST record is printed when the child finishes.
    with contextlib.suppress(Exception):
        async for chunk in hatchet.runs.subscribe_to_stream(run_id):
            await queue.put((run_id, chunk))


async def follow(
    hatchet: Hatchet,
    run_id: str,
    *,
    printer: TranscriptPrinter | None,
    progress: Progress,
    poll_seconds: float = POLL_SECONDS,
) -> Transcript:
    """Follow the run to its end and return its final transcript.

    With a printer, everything is printed as it happens (``watch``); without
    one only the progress shows (``submit --wait``).
    """
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    streams: dict[str, asyncio.Task[None]] = {}
    reader = RunReader(hatchet, run_id)
    try:
        transcript = await reader.read()
        while not transcript.finished:
            if printer is not None:
                printer.update(transcript)
                for entry in transcript.entries:
                    if (
                        isinstance(entry, TurnEntry | ScriptEntry)
                        and not RunStatus(entry.status).finished
                        and entry.id not in streams
                    ):
                        streams[entry.id] = asyncio.create_task(_pump(hatchet, entry.id, queue))
            progress.show(transcript)
            await _drain(queue, printer, progress, transcript, poll_seconds)
            transcript = await reader.read()
        transcript = await _settled(reader, transcript)
    finally:
        for task in streams.values():
            task.cancel()
        await asyncio.gather(*streams.values(), return_exceptions=True)
        progress.clear()
    while not queue.empty() and printer is not None:
        printer.stream(*queue.get_nowait())
    return transcript


async def _drain(
    queue: asyncio.Queue[tuple[str, str]],
    printer: TranscriptPrinter | None,
    progress: Progress,
    transcript: Transcript,
    seconds: float,
) -> None:
    """Print streamed chunks and animate the status line until the next poll."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            entry_id, chunk = await asyncio.wait_for(queue.get(), timeout=min(TICK_SECONDS, left))
        except TimeoutError:
            progress.show(transcript)
            continue
        if printer is not None:
            printer.stream(entry_id, chunk)


async def _settled(reader: RunReader, transcript: Transcript) -> Transcript:
    """The final record: the REST view of children can lag the run's own status briefly."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while loop.time() < deadline and any(
        not RunStatus(getattr(e, "status", RunStatus.COMPLETED)).finished
        for e in transcript.entries
    ):
        await asyncio.sleep(POLL_SECONDS)
        transcript = await reader.read()
    return transcript
