"""The embedded runtime's outbox as the notifier sees it: core.ports.Outbox and DeadLetters over SQLite.

    outbox   seq → key (the idempotency key), subscription_id, channel, payload (core.codec JSON, secrets
             included), status (pending | held | delivered | dropped | dead), attempts, next_at, last_error

The stream processor creates and fills the table (streams/sqlite.py: its schema, indexes and the insert live
with the state commit, in whose transaction every delivery is written; the four I/O packages do not import
each other). This module hands out what is due and records what became of each delivery.

`pending` walks only the pending and held rows, in outbox order (index `outbox_ready`), and stops at `limit`;
each row's check for an earlier delivery of its subscription waiting for a retry is one index seek
(`outbox_waiting`). Handing out a batch costs O(limit · log n) however many rows were delivered before, so
draining n deliveries costs O(n log n).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import orjson

from core.codec import delivery_from_dict
from core.model import Delivery
from core.ports import DeadLetter
from core.stamps import stamp

T = TypeVar("T")

# Due rows, oldest first, that no earlier delivery of the same subscription waiting for a retry holds back.
# INDEXED BY pins the plan: the (status, next_at) index would make SQLite sort every due row on each call.
PENDING = (
    "SELECT o.payload, o.attempts FROM outbox o INDEXED BY outbox_ready "
    "WHERE o.status IN ('pending', 'held') AND o.next_at <= ? "
    "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subscription_id = o.subscription_id "
    "AND p.status = 'pending' AND p.next_at > ? AND p.seq < o.seq) ORDER BY o.seq LIMIT ?"
)


class Transactions(Protocol):
    """The database the outbox lives in (streams.sqlite.Database): `call(fn)` runs `fn(connection)` in one
    transaction on the database's thread."""

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...


def dead_letter(payload: dict[str, Any], attempts: int, reason: str) -> DeadLetter:
    change, subscription = payload["change"], payload["subscription"]
    channel = str(subscription["destination"]).partition("://")[0].partition("+")[0]
    return DeadLetter(payload["key"], subscription["id"], channel, change["id"], change["kinds"][0], attempts, reason)


class SqliteOutbox:
    """core.ports.Outbox over the `outbox` table; order per subscription is kept across retries."""

    def __init__(self, db: Transactions) -> None:
        self.db = db

    async def pending(self, limit: int, now: datetime) -> list[tuple[Delivery, int]]:
        at = stamp(now)

        def read(conn: sqlite3.Connection) -> list[tuple[Delivery, int]]:
            rows = conn.execute(PENDING, (at, at, limit))
            return [(delivery_from_dict(orjson.loads(payload)), attempts) for payload, attempts in rows]
        return await self.db.call(read)

    async def delivered(self, key: str, at: datetime) -> None:
        await self.delivered_many([(key, at)])

    async def delivered_many(self, sent: Sequence[tuple[str, datetime]]) -> None:
        """Every (key, when) done, in one transaction."""
        rows = [(stamp(at), key) for key, at in sent]
        await self.db.call(lambda conn: conn.executemany(
            "UPDATE outbox SET status = 'delivered', delivered_at = ?, last_error = NULL WHERE key = ?", rows))

    async def failed(self, key: str, attempts: int, reason: str, retry_at: datetime | None) -> None:
        status, next_at = ("pending", stamp(retry_at)) if retry_at else ("dead", None)
        await self.db.call(lambda conn: conn.execute(
            "UPDATE outbox SET status = ?, attempts = ?, last_error = ?, next_at = coalesce(?, next_at) "
            "WHERE key = ?", (status, attempts, reason, next_at, key)))

    async def hold(self, key: str, until: datetime) -> None:
        await self.db.call(lambda conn: conn.execute(
            "UPDATE outbox SET status = 'held', next_at = ? WHERE key = ?", (stamp(until), key)))

    async def dropped(self, key: str, reason: str) -> None:
        await self.db.call(lambda conn: conn.execute(
            "UPDATE outbox SET status = 'dropped', last_error = ? WHERE key = ?", (reason, key)))

    async def dead(self, limit: int = 1000) -> list[DeadLetter]:
        """core.ports.DeadLetters: the dead letters, most recent first."""
        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute("SELECT payload, attempts, last_error FROM outbox WHERE status = 'dead' "
                                "ORDER BY seq DESC LIMIT ?", (limit,))
            return [dead_letter(orjson.loads(payload), attempts, error or "") for payload, attempts, error in rows]
        return await self.db.call(read)

    async def replay(self, key: str, now: datetime | None = None) -> bool:
        """A dead letter queued again as a first attempt, due `now`."""
        at = stamp(now or datetime.now(UTC))
        return await self.db.call(lambda conn: conn.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_at = ?, last_error = NULL "
            "WHERE key = ? AND status = 'dead'", (at, key)).rowcount > 0)

    async def counts(self) -> Mapping[str, int]:
        def read(conn: sqlite3.Connection) -> dict[str, int]:
            return dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        return await self.db.call(read)

    async def next_due(self) -> datetime | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT min(next_at) FROM outbox WHERE status IN ('pending', 'held')").fetchone()
            return None if row is None else row[0]
        found = await self.db.call(read)
        return None if found is None else datetime.fromisoformat(found)
