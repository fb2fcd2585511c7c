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
DROP TRIGGER IF EXISTS subscriptions_inserted;
DROP TRIGGER IF EXISTS subscriptions_updated;
DROP TRIGGER IF EXISTS subscriptions_deleted;
DROP TABLE IF EXISTS subscriptions_revision;
CREATE TABLE IF NOT EXISTS subscriptions_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS subscriptions_log_insert AFTER INSERT ON subscriptions BEGIN
    INSERT INTO subscriptions_log (id) VALUES (NEW.id);
    DELETE FROM subscriptions_log WHERE seq <= (SELECT max(seq) FROM subscriptions_log) - {kept};
END;
CREATE TRIGGER IF NOT EXISTS subscriptions_log_update AFTER UPDATE ON subscriptions BEGIN
    INSERT INTO subscriptions_log (id) VALUES (NEW.id);
    DELETE FROM subscriptions_log WHERE seq <= (SELECT max(seq) FROM subscriptions_log) - {kept};
END;
CREATE TRIGGER IF NOT EXISTS subscriptions_log_delete AFTER DELETE ON subscriptions BEGIN
    INSERT INTO subscriptions_log (id) VALUES (OLD.id);
    DELETE FROM subscriptions_log WHERE seq <= (SELECT max(seq) FROM subscriptions_log) - {kept};
END;
"""
LOG_KEPT = 100_000  # writes the log remembers: a reader further behind rebuilds from the table


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
        self._conn.executescript(SCHEMA.format(kept=LOG_KEPT))

    def revision(self) -> int:
        """A number that moves whenever anyone (this store, another process's `vigie subscribe`) writes a
        subscription: triggers log every write's id. One cheap query; the embedded runtime keeps its index until
        it moves."""
        (revision,) = self._conn.execute("SELECT coalesce(max(seq), 0) FROM subscriptions_log").fetchone()
        return int(revision)

    def written_since(self, revision: int) -> tuple[int, set[str]] | None:
        """(the revision now, the ids written after `revision`), or None when the log no longer reaches back that
        far (the reader should read everything again)."""
        rows = self._conn.execute("SELECT seq, id FROM subscriptions_log WHERE seq > ? ORDER BY seq",
                                  (revision,)).fetchall()
        (oldest,) = self._conn.execute("SELECT coalesce(min(seq), 0) FROM subscriptions_log").fetchone()
        if oldest > revision + 1:
            return None
        return (rows[-1][0] if rows else revision), {str(i) for _, i in rows}

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
