"""When each destination's current run of failures began, in the embedded runtime's SQLite file
(notifiers/failing.py `Failures`). The notifier alone reads and writes this table, so it creates it too.

    failing   destination → since (Unix time of the first failure of the run)

One process writes it, so the destinations with a row are also kept in memory: a success to a destination that
never failed (nearly every delivery) costs no write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from notifiers.outbox_sqlite import Transactions

SCHEMA = "CREATE TABLE IF NOT EXISTS failing (destination TEXT PRIMARY KEY, since REAL NOT NULL) WITHOUT ROWID"


class SqliteFailures:
    def __init__(self, db: Transactions) -> None:
        self.db = db
        self._failing: set[str] | None = None

    async def _known(self) -> set[str]:
        if self._failing is None:
            def load(conn: sqlite3.Connection) -> set[str]:
                conn.execute(SCHEMA)
                return {row[0] for row in conn.execute("SELECT destination FROM failing")}
            self._failing = await self.db.call(load)
        return self._failing

    async def failed(self, destination: str, at: float) -> float:
        def write(conn: sqlite3.Connection) -> float:
            conn.execute("INSERT OR IGNORE INTO failing (destination, since) VALUES (?, ?)", (destination, at))
            return float(conn.execute("SELECT since FROM failing WHERE destination = ?", (destination,)).fetchone()[0])
        (await self._known()).add(destination)
        return await self.db.call(write)

    async def succeeded(self, destinations: Collection[str]) -> None:
        known = await self._known()
        over = [d for d in destinations if d in known]
        if over:
            await self.db.call(lambda conn: conn.executemany("DELETE FROM failing WHERE destination = ?",
                                                             [(d,) for d in over]))
            known.difference_update(over)
