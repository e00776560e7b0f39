"""Webhook ids already seen, and what was answered to them: at-most-once effects.

A helpdesk retries a delivery it got no answer to (Zendesk waits 10 s and
may deliver twice), so a request whose ``webhook-id`` was seen before gets
the first answer again and changes nothing. The record lives in SQLite in
the state directory: it survives a restart of the API, and several API
processes on one host share it. A claim is taken before the request runs, so
two copies arriving together run once; a request that failed on our side
(a 5xx) releases its claim, so the helpdesk's retry can succeed.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

KEEP_SECONDS = 24 * 3600
# How often a running API forgets old records (its claims do it, at most this often).
FORGET_EVERY_SECONDS = 60.0
PENDING = -1


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class DeliveryLog:
    def __init__(self, path: Path, *, wait_seconds: float = 30.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,"
            " status INTEGER NOT NULL, body BLOB, at REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ticket_runs"
            " (ticket_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS deliveries_at ON deliveries (at)")
        self._db.execute("CREATE INDEX IF NOT EXISTS ticket_runs_at ON ticket_runs (at)")
        self._wait = wait_seconds
        self._forgotten_at = -math.inf
        self.forget_old()

    def forget_old(self) -> None:
        """Drop records past their keeping time.

        A webhook id older than its 5-minute timestamp tolerance cannot be
        delivered again; run ids are kept a week for re-sent tickets.
        """
        self._forgotten_at = time.monotonic()
        self._db.execute("DELETE FROM deliveries WHERE at < ?", (time.time() - KEEP_SECONDS,))
        self._db.execute("DELETE FROM ticket_runs WHERE at < ?", (time.time() - 7 * KEEP_SECONDS,))

    def claim(self, delivery_id: str, fingerprint: str) -> bool:
        """True for the first request with this id, which must then ``record`` or ``release``."""
        if time.monotonic() - self._forgotten_at >= FORGET_EVERY_SECONDS:
            self.forget_old()  # a long-running API keeps its log to a day's deliveries
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO deliveries (id, fingerprint, status, at) VALUES (?, ?, ?, ?)",
            (delivery_id, fingerprint, PENDING, time.time()),
        )
        return cursor.rowcount == 1

    async def answer(self, delivery_id: str) -> tuple[str, Answer | None]:
        """The first request's fingerprint and answer; waits while that request still runs."""
        deadline = time.monotonic() + self._wait
        while True:
            row = self._db.execute(
                "SELECT fingerprint, status, body FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                return "", None  # released meanwhile: the caller may claim it
            fingerprint, status, body = row
            if status != PENDING:
                return fingerprint, Answer(status, body or b"")
            if time.monotonic() > deadline:
                return fingerprint, None
            await asyncio.sleep(0.05)

    def record(self, delivery_id: str, answer: Answer) -> None:
        self._db.execute(
            "UPDATE deliveries SET status = ?, body = ? WHERE id = ?",
            (answer.status, answer.body, delivery_id),
        )

    def release(self, delivery_id: str) -> None:
        self._db.execute("DELETE FROM deliveries WHERE id = ?", (delivery_id,))

    def last_run(self, ticket_id: str) -> str | None:
        """The run this API last started for a ticket (the engine's run list lags a trigger)."""
        row = self._db.execute(
            "SELECT run_id FROM ticket_runs WHERE ticket_id = ?", (ticket_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def remember_run(self, ticket_id: str, run_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO ticket_runs (ticket_id, run_id, at) VALUES (?, ?, ?)",
            (ticket_id, run_id, time.time()),
        )

    def close(self) -> None:
        self._db.close()
