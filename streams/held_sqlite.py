"""Dataset events (mass rewrites held back, core/storms.py) in the embedded runtime's SQLite file.

    dataset_events   one row per held event: source, fields, how many records of how many, released_at
    held_changes     the changes each event holds, as `core.codec.change_to_dict` JSON

The processor writes both in the transaction of the snapshot that held them (`write_event`). `release` logs the
held changes in the change log and enqueues their deliveries in one transaction, and marks the event released: a
second release finds nothing left to send.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from core.codec import change_from_dict, change_to_dict
from core.model import Change
from core.storms import DatasetEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS dataset_events (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, dataset TEXT NOT NULL, version TEXT NOT NULL, fields TEXT NOT NULL,
    count INTEGER NOT NULL, rows INTEGER NOT NULL, detected_at TEXT NOT NULL, released_at TEXT
);
CREATE TABLE IF NOT EXISTS held_changes (
    event_id TEXT NOT NULL, change_id TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (event_id, change_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """A dataset event as operators see it in `vigie sources`."""

    id: str
    source: str
    dataset: str
    version: str
    fields: tuple[str, ...]
    count: int
    rows: int
    detected_at: str
    released_at: str | None

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "source": self.source, "dataset": self.dataset, "version": self.version,
                "fields": list(self.fields), "count": self.count, "rows": self.rows,
                "detected_at": self.detected_at, "released_at": self.released_at}


def write_event(conn: sqlite3.Connection, event: DatasetEvent | None, held: Sequence[Change]) -> None:
    if event is None:
        return
    conn.execute(
        "INSERT OR IGNORE INTO dataset_events (id, source, dataset, version, fields, count, rows, detected_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (event.id, event.source, event.dataset, event.version, ",".join(event.fields), event.count, event.rows,
         event.detected_at.isoformat()))
    conn.executemany("INSERT OR IGNORE INTO held_changes (event_id, change_id, data) VALUES (?, ?, ?)",
                     ((event.id, c.id, orjson.dumps(change_to_dict(c))) for c in held))


def events(conn: sqlite3.Connection) -> list[HeldEvent]:
    rows = conn.execute("SELECT id, source, dataset, version, fields, count, rows, detected_at, released_at "
                        "FROM dataset_events ORDER BY detected_at, id")
    return [HeldEvent(r[0], r[1], r[2], r[3], tuple(r[4].split(",")), r[5], r[6], r[7], r[8]) for r in rows]


def held_changes(conn: sqlite3.Connection, event_id: str) -> list[Change]:
    """The changes an event still holds (none once released)."""
    rows = conn.execute(
        "SELECT h.data FROM held_changes h JOIN dataset_events e ON e.id = h.event_id "
        "WHERE h.event_id = ? AND e.released_at IS NULL ORDER BY h.change_id", (event_id,))
    return [change_from_dict(orjson.loads(data)) for (data,) in rows]


def mark_released(conn: sqlite3.Connection, event_id: str, at: datetime) -> None:
    conn.execute("UPDATE dataset_events SET released_at = ? WHERE id = ?", (at.isoformat(), event_id))
    conn.execute("DELETE FROM held_changes WHERE event_id = ?", (event_id,))
