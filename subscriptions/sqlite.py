"""Subscriptions of the embedded runtime, in the same SQLite file as the rest of its state."""

from __future__ import annotations

import sqlite3

import orjson

from core.codec import subscription_from_dict, subscription_to_dict
from core.model import Subscription

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, destination TEXT NOT NULL, data BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS subscriptions_revision (id INTEGER PRIMARY KEY CHECK (id = 0), n INTEGER NOT NULL);
INSERT OR IGNORE INTO subscriptions_revision VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS subscriptions_inserted AFTER INSERT ON subscriptions
    BEGIN UPDATE subscriptions_revision SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS subscriptions_updated AFTER UPDATE ON subscriptions
    BEGIN UPDATE subscriptions_revision SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS subscriptions_deleted AFTER DELETE ON subscriptions
    BEGIN UPDATE subscriptions_revision SET n = n + 1; END;
"""


def _path(url: str) -> str:
    if url.startswith("memory://"):
        return ":memory:"
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    raise ValueError(f"not a SQLite URL: {url!r}")


class SqliteSubscriptionStore:
    """core.ports.SubscriptionStore; small and rarely written, so plain short transactions suffice."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn = sqlite3.connect(_path(url), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.executescript(SCHEMA)

    def revision(self) -> int:
        """A number that moves whenever anyone (this store, another process's `vigie subscribe`) writes a
        subscription: triggers count the writes. One cheap query; the embedded runtime keeps its index until it
        moves."""
        (revision,) = self._conn.execute("SELECT n FROM subscriptions_revision").fetchone()
        return int(revision)

    async def put(self, subscription: Subscription) -> None:
        data = orjson.dumps(subscription_to_dict(subscription))
        self._conn.execute(
            "INSERT INTO subscriptions (id, destination, data) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET destination = excluded.destination, data = excluded.data",
            (subscription.id, subscription.destination, data),
        )

    async def get(self, subscription_id: str) -> Subscription | None:
        row = self._conn.execute("SELECT data FROM subscriptions WHERE id = ?", (subscription_id,)).fetchone()
        return None if row is None else subscription_from_dict(orjson.loads(row[0]))

    async def delete(self, subscription_id: str) -> bool:
        cursor = self._conn.execute("DELETE FROM subscriptions WHERE id = ?", (subscription_id,))
        return cursor.rowcount > 0

    async def all(self) -> list[Subscription]:
        rows = self._conn.execute("SELECT data FROM subscriptions ORDER BY rowid")
        return [subscription_from_dict(orjson.loads(data)) for (data,) in rows]

    async def aclose(self) -> None:
        self._conn.close()
