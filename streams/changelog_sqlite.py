"""The embedded runtime's change log, read for the catch-up feed and previews: the `changes` table of its file.

A position is the row's rowid: rows are only ever appended (`INSERT OR IGNORE`, the change id is the key), so a
rowid names one change for good and later changes have larger ones. Reads open a short-lived connection on a
worker thread (WAL: they never wait for the runtime's writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import orjson

from core.codec import change_from_dict
from core.model import Change
from streams.sqlite import sqlite_path


class SqliteChangeLog:
    """core.ports.ChangeLog over the SQLite state file."""

    def __init__(self, url: str) -> None:
        self._path = sqlite_path(url)

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[int, bytes]]:
        conn = sqlite3.connect(self._path)
        try:
            return [(int(rowid), bytes(data)) for rowid, data in conn.execute(sql, args)]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # nothing processed yet
                return []
            raise
        finally:
            conn.close()

    async def after(self, position: str | None, limit: int) -> list[tuple[str, Change]]:
        start = int(position) if position else 0
        rows = await asyncio.to_thread(
            self._rows, "SELECT rowid, data FROM changes WHERE rowid > ? ORDER BY rowid LIMIT ?", (start, limit))
        return [(str(rowid), change_from_dict(orjson.loads(data))) for rowid, data in rows]

    async def since(self, moment: datetime, limit: int) -> list[Change]:
        # detected_at is stored as an ISO string; a second's margin, then the exact comparison on the decoded change
        rough = (moment.astimezone(UTC) - timedelta(seconds=1)).isoformat(timespec="seconds")
        rows = await asyncio.to_thread(
            self._rows, "SELECT rowid, data FROM changes WHERE detected_at >= ? ORDER BY rowid LIMIT ?",
            (rough, limit))
        changes = (change_from_dict(orjson.loads(data)) for _, data in rows)
        return [change for change in changes if change.detected_at >= moment]

    async def aclose(self) -> None:
        return None
