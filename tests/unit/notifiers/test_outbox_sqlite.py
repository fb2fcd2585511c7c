"""The embedded outbox's `pending`: what it hands out, the plan SQLite runs it with, and older databases' indexes.

The plan is the scaling proof (no wall time): the due rows are found by walking the active rows in outbox order
and stopping at the limit, never by scanning the table or sorting every due row, and the order check per row is
one index seek.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from core.model import Delivery
from core.stamps import stamp
from notifiers.outbox_sqlite import PENDING, SqliteOutbox
from streams.sqlite import Commit, Database, SourceState, StateStore
from tests.unit.notifiers.support import T0, delivery

T = TypeVar("T")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database(f"sqlite:///{tmp_path / 'state.db'}").open()
    yield database
    await database.close()


async def queue(db: Database, *deliveries: Delivery) -> None:
    health = SourceState("src", "v1", True, None, stamp(T0), 0)
    await StateStore(db).commit(Commit("src", [], [], [], deliveries, [], health), now=T0)


def records(pending: list[tuple[Delivery, int]]) -> list[str]:
    return [d.change.key for d, _ in pending]


async def test_pending_walks_the_active_rows_in_order_and_seeks_each_order_check(db: Database) -> None:
    plan = [row[3] for row in db.conn.execute(f"EXPLAIN QUERY PLAN {PENDING}", (stamp(T0), stamp(T0), 100))]

    assert plan[0] == "SCAN o USING INDEX outbox_ready"  # a partial index: pending and held rows only
    assert "SEARCH p USING INDEX outbox_waiting (subscription_id=? AND next_at>?)" in plan
    assert not [step for step in plan if step.endswith(("SCAN o", "SCAN p", "SCAN outbox")) or "TEMP B-TREE" in step]


async def test_a_retry_holds_back_its_subscription_only_and_delivered_rows_are_not_handed_out(db: Database) -> None:
    a1, a2, b1, a3, b2 = (delivery("console://", sub_id=sub, key=key)
                          for sub, key in (("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3"), ("b", "b2")))
    await queue(db, a1, a2, b1, a3, b2)
    outbox = SqliteOutbox(db)
    await outbox.delivered(a1.key, T0)
    await outbox.failed(a2.key, 1, "HTTP 503", T0 + timedelta(minutes=5))
    await outbox.hold(b1.key, T0 + timedelta(hours=1))  # a digest: it does not hold back b2

    assert records(await outbox.pending(10, T0)) == ["b2"]
    assert records(await outbox.pending(10, T0 + timedelta(minutes=5))) == ["a2", "a3", "b2"]
    assert records(await outbox.pending(2, T0 + timedelta(hours=1))) == ["a2", "b1"]


async def test_an_older_database_loses_the_index_nothing_reads_and_gains_the_pending_ones(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, "
                    "subscription_id TEXT NOT NULL, channel TEXT NOT NULL, payload BLOB NOT NULL, "
                    "status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, "
                    "next_at TEXT NOT NULL, last_error TEXT, created_at TEXT NOT NULL, delivered_at TEXT)")
        old.execute("CREATE INDEX outbox_sub ON outbox (subscription_id, status, seq)")
    old.close()

    db = await Database(f"sqlite:///{path}").open()
    try:
        indexes = {row[0] for row in db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox' AND sql IS NOT NULL")}
    finally:
        await db.close()
    assert indexes == {"outbox_due", "outbox_ready", "outbox_waiting"}


class Counting:
    """The database, counting the transactions run on it."""

    def __init__(self, db: Database) -> None:
        self.db, self.transactions = db, 0

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.transactions += 1
        return await self.db.call(fn)


async def test_delivered_many_marks_a_batch_in_one_transaction_each_with_its_time(db: Database) -> None:
    a1, a2, b1 = (delivery("console://", sub_id=sub, key=key) for sub, key in (("a", "a1"), ("a", "a2"), ("b", "b1")))
    await queue(db, a1, a2, b1)
    counting = Counting(db)
    await SqliteOutbox(counting).delivered_many([(a1.key, T0), (b1.key, T0 + timedelta(seconds=1))])

    assert counting.transactions == 1
    rows = db.conn.execute("SELECT key, status, delivered_at FROM outbox ORDER BY seq").fetchall()
    assert rows == [(a1.key, "delivered", stamp(T0)), (a2.key, "pending", None),
                    (b1.key, "delivered", stamp(T0 + timedelta(seconds=1)))]
    assert records(await SqliteOutbox(db).pending(10, T0)) == ["a2"]
