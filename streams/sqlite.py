"""The embedded runtime's durable state, in one SQLite file.

One database holds what must change together: the last version of every record per source
(the diff state), the outbox of deliveries, the quarantine, and each source's health. The
processor commits all of them in **one transaction**, so a crash either loses the whole poll
(it is redone, with the same change ids) or none of it.

The outbox is written here, in that transaction, and read by the notifier (notifiers/outbox_sqlite.py,
which the `outbox_ready` and `outbox_waiting` indexes serve).

All SQLite calls run on one dedicated thread, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from core.codec import (
    change_to_dict,
    record_from_dict,
    record_to_dict,
    subscription_to_dict,
)
from core.model import Change, Delivery, Record
from core.ports import Quarantined
from core.stamps import stamp
from core.storms import DatasetEvent
from streams import held_sqlite

T = TypeVar("T")


SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS records (
    scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sources (
    url TEXT PRIMARY KEY, version TEXT, healthy INTEGER NOT NULL DEFAULT 1, problem TEXT,
    checked_at TEXT, rows INTEGER, incident TEXT, incident_since TEXT, failures INTEGER NOT NULL DEFAULT 0,
    failing_since TEXT, fresh_at TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, subscription_id TEXT NOT NULL,
    channel TEXT NOT NULL, payload BLOB NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, last_error TEXT, created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_at);
CREATE INDEX IF NOT EXISTS outbox_ready ON outbox (seq, next_at, subscription_id) WHERE status IN ('pending', 'held');
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (subscription_id, next_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS changes (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, op TEXT NOT NULL, kinds TEXT NOT NULL, detected_at TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, reason TEXT NOT NULL, row BLOB NOT NULL,
    at TEXT NOT NULL
);
"""


# columns added since the first release: (name, declaration), added to an older database when it is opened
SOURCE_COLUMNS = (("incident", "TEXT"), ("incident_since", "TEXT"), ("failures", "INTEGER NOT NULL DEFAULT 0"),
                  ("failing_since", "TEXT"), ("fresh_at", "TEXT"))
# indexes of older releases, dropped when such a database is opened: outbox_sub covered delivered rows too, and
# answered the pending query's order check with a range over every earlier pending sibling (outbox_waiting now)
RETIRED_INDEXES = ("outbox_sub",)


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's health, and its open incident (core/health.py) with what decides the next one."""

    url: str
    version: str | None
    healthy: bool
    problem: str | None
    checked_at: str | None
    rows: int | None
    incident: str | None = None  # "stale" or "failing" while an incident is open
    incident_since: str | None = None
    failures: int = 0  # consecutive failed or incomplete polls
    failing_since: str | None = None
    fresh_at: str | None = None  # when a new version was last seen

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> SourceState:
        return cls(row[0], row[1], bool(row[2]), row[3], row[4], row[5], row[6], row[7], int(row[8] or 0), row[9],
                   row[10])


def migrate(conn: sqlite3.Connection) -> None:
    """Add the columns an older database lacks (its rows get their defaults: no incident known), and drop the
    indexes nothing reads any more (SCHEMA has already created their replacements)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(sources)")}
    for name, declaration in SOURCE_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE sources ADD COLUMN {name} {declaration}")
    for index in RETIRED_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {index}")


@dataclass(frozen=True, slots=True)
class Commit:
    """Everything one processed snapshot writes, atomically."""

    scope: str
    upserts: Sequence[Record]
    deletes: Sequence[str]
    changes: Sequence[Change]
    deliveries: Sequence[Delivery]
    quarantined: Sequence[Quarantined]
    source: SourceState
    held: Sequence[Change] = ()
    event: DatasetEvent | None = None


def sqlite_path(url: str) -> str:
    """`sqlite:///rel/path.db`, `sqlite:////abs/path.db`, `memory://` → a sqlite3 filename."""
    if url.startswith("memory://"):
        return ":memory:"
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    raise ValueError(f"not a SQLite URL: {url!r} (use sqlite:///path.db or memory://)")


class Database:
    """One SQLite connection on one thread; every method is a short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigie-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._path = sqlite_path(url)

    async def open(self) -> Database:
        await self._run(self._connect)
        return self

    def _connect(self) -> None:
        self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        self._conn.executescript(SCHEMA + held_sqlite.SCHEMA)
        migrate(self._conn)

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` inside one transaction on the database thread."""
        def tx() -> T:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        return await self._run(tx)


class StateStore:
    """Diff state, source health and the transactional commit of a processed snapshot."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, scope: str) -> dict[str, Record]:
        def read(conn: sqlite3.Connection) -> dict[str, Record]:
            rows = conn.execute("SELECT key, data FROM records WHERE scope = ?", (scope,))
            return {key: record_from_dict(orjson.loads(data)) for key, data in rows}
        return await self.db.call(read)

    async def source(self, url: str) -> SourceState | None:
        def read(conn: sqlite3.Connection) -> SourceState | None:
            row = conn.execute("SELECT url, version, healthy, problem, checked_at, rows, incident, incident_since, "
                               "failures, failing_since, fresh_at FROM sources WHERE url = ?", (url,)).fetchone()
            return None if row is None else SourceState.of_row(row)
        return await self.db.call(read)

    async def sources(self) -> list[SourceState]:
        def read(conn: sqlite3.Connection) -> list[SourceState]:
            rows = conn.execute("SELECT url, version, healthy, problem, checked_at, rows, incident, incident_since, "
                                "failures, failing_since, fresh_at FROM sources ORDER BY url")
            return [SourceState.of_row(r) for r in rows]
        return await self.db.call(read)

    async def record_health(self, state: SourceState) -> None:
        await self.db.call(lambda conn: _upsert_source(conn, state))

    async def commit(self, commit: Commit, *, now: datetime,
                     also: Callable[[sqlite3.Connection], object] | None = None) -> None:
        """Write `commit`, and whatever `also` writes (the current-state view), in one transaction."""
        def write(conn: sqlite3.Connection) -> None:
            _write_commit(conn, commit, now)
            if also is not None:
                also(conn)
        await self.db.call(write)

    async def events(self) -> list[held_sqlite.HeldEvent]:
        """Every dataset event (mass rewrite held back), oldest first."""
        return await self.db.call(held_sqlite.events)

    async def held(self, event_id: str) -> list[Change]:
        return await self.db.call(lambda conn: held_sqlite.held_changes(conn, event_id))

    async def release(self, event: held_sqlite.HeldEvent, changes: Sequence[Change], deliveries: Sequence[Delivery],
                      *, now: datetime) -> None:
        """Let a held event's changes through: logged and enqueued like any snapshot's, in one transaction."""
        def write(conn: sqlite3.Connection) -> None:
            _log_changes(conn, event.source, changes)
            _enqueue(conn, deliveries, now)
            held_sqlite.mark_released(conn, event.id, now)
        await self.db.call(write)

    async def quarantine_count(self) -> int:
        return await self.db.call(lambda conn: int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]))

    async def quarantined(self, limit: int = 100) -> list[tuple[str, str, dict[str, Any]]]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, str, dict[str, Any]]]:
            rows = conn.execute("SELECT source, reason, row FROM quarantine ORDER BY id DESC LIMIT ?", (limit,))
            return [(s, r, orjson.loads(raw)) for s, r, raw in rows]
        return await self.db.call(read)


def _upsert_source(conn: sqlite3.Connection, s: SourceState) -> None:
    conn.execute(
        "INSERT INTO sources (url, version, healthy, problem, checked_at, rows, incident, incident_since, failures, "
        "failing_since, fresh_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (url) DO UPDATE SET version = coalesce(excluded.version, version), healthy = excluded.healthy, "
        "problem = excluded.problem, checked_at = excluded.checked_at, rows = coalesce(excluded.rows, rows), "
        "incident = excluded.incident, incident_since = excluded.incident_since, failures = excluded.failures, "
        "failing_since = excluded.failing_since, fresh_at = excluded.fresh_at",
        (s.url, s.version, int(s.healthy), s.problem, s.checked_at, s.rows, s.incident, s.incident_since,
         s.failures, s.failing_since, s.fresh_at),
    )


def _write_commit(conn: sqlite3.Connection, c: Commit, now: datetime) -> None:
    conn.executemany(
        "INSERT INTO records (scope, key, fingerprint, data) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, data = excluded.data",
        ((c.scope, r.key, r.fingerprint, orjson.dumps(record_to_dict(r))) for r in c.upserts),
    )
    conn.executemany("DELETE FROM records WHERE scope = ? AND key = ?", ((c.scope, k) for k in c.deletes))
    _log_changes(conn, c.scope, c.changes)
    _enqueue(conn, c.deliveries, now)
    conn.executemany(
        "INSERT INTO quarantine (source, reason, row, at) VALUES (?, ?, ?, ?)",
        ((q.source, q.reason, orjson.dumps(dict(q.row), default=str), stamp(now)) for q in c.quarantined),
    )
    _upsert_source(conn, c.source)
    held_sqlite.write_event(conn, c.event, c.held)


def _log_changes(conn: sqlite3.Connection, scope: str, changes: Iterable[Change]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO changes (id, scope, op, kinds, detected_at, data) VALUES (?, ?, ?, ?, ?, ?)",
        ((ch.id, scope, ch.op.value, ",".join(ch.kinds), ch.detected_at.isoformat(),
          orjson.dumps(change_to_dict(ch))) for ch in changes),
    )


def _delivery_payload(d: Delivery) -> bytes:
    # The embedded outbox lives in the same file as the subscriptions, secrets included.
    return orjson.dumps({"key": d.key, "change": change_to_dict(d.change),
                         "subscription": subscription_to_dict(d.subscription, include_secret=True)})


def _enqueue(conn: sqlite3.Connection, deliveries: Iterable[Delivery], now: datetime) -> None:
    at = stamp(now)
    conn.executemany(
        "INSERT OR IGNORE INTO outbox (key, subscription_id, channel, payload, next_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ((d.key, d.subscription.id, d.subscription.channel, _delivery_payload(d), at, at) for d in deliveries),
    )
