"""The current-state view of the embedded runtime: a table of shown records and an R*Tree of their points.

It lives in the runtime's SQLite file (`streams.sqlite.Database`), next to the diff state, and runs on the
database's own thread. See streams/view.py for what the view holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import orjson

from core.codec import record_from_dict, record_to_dict
from core.geo import Circle, Point
from core.model import Change, Record
from core.profiles import Profile, profile_for
from streams.sqlite import Database
from streams.view import (
    DEFAULT_LIMIT,
    UPSERT,
    check_dataset,
    nearest,
    placeable,
    query_center,
    rank,
    steps,
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS view_records ("
    " id INTEGER PRIMARY KEY, dataset TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL,"
    " rank TEXT NOT NULL, rating INTEGER, lat REAL, lon REAL, data BLOB NOT NULL, UNIQUE (dataset, entity))",
    "CREATE VIRTUAL TABLE IF NOT EXISTS view_places USING rtree(id, min_lat, max_lat, min_lon, max_lon)",
)

UPSERT_ROW = (
    "INSERT INTO view_records (dataset, entity, key, rank, rating, lat, lon, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (dataset, entity) DO UPDATE SET key = excluded.key, rank = excluded.rank, "
    "rating = excluded.rating, lat = excluded.lat, lon = excluded.lon, data = excluded.data "
    "WHERE excluded.key = view_records.key OR excluded.rank >= view_records.rank RETURNING id"
)

# CROSS JOIN keeps the R*Tree as the outer loop; a plain JOIN lets the planner scan every record of the dataset
# and probe the R*Tree by id (20x slower on 36k places).
IN_BOX = (
    "SELECT v.entity, v.lat, v.lon, v.data FROM view_places p CROSS JOIN view_records v ON v.id = p.id "
    "WHERE p.max_lat >= ? AND p.min_lat <= ? AND p.max_lon >= ? AND p.min_lon <= ? AND v.dataset = ? "
    "AND (? IS NULL OR v.rating <= ?)"
)


class SqliteCurrentView:
    """streams.view.CurrentView in SQLite. Call `open()` once (it creates the tables) before anything else."""

    def __init__(self, db: Database, *, dataset: str, profile: Profile | None = None, own_db: bool = False) -> None:
        self.db = db
        self.dataset = dataset
        self.profile = profile or profile_for(dataset)
        self._own_db = own_db

    @classmethod
    async def connect(cls, url: str, *, dataset: str, profile: Profile | None = None) -> SqliteCurrentView:
        """A view with its own database (`sqlite:///path.db` or `memory://`), closed by `aclose`."""
        return await cls(await Database(url).open(), dataset=dataset, profile=profile, own_db=True).open()

    async def open(self) -> SqliteCurrentView:
        def create(conn: sqlite3.Connection) -> None:
            for statement in SCHEMA:
                conn.execute(statement)
        await self.db.call(create)
        return self

    async def upsert(self, record: Record) -> bool:
        check_dataset(self, record)
        return await self.db.call(lambda conn: self.upsert_in(conn, record))

    async def remove(self, record: Record) -> bool:
        check_dataset(self, record)
        return await self.db.call(lambda conn: self.remove_in(conn, record))

    def upsert_in(self, conn: sqlite3.Connection, record: Record) -> bool:
        """`upsert` inside the caller's transaction."""
        point, data = placeable(record), orjson.dumps(record_to_dict(record))
        lat, lon = (point.lat, point.lon) if point else (None, None)
        row = (self.dataset, record.entity, record.key, rank(record, self.profile), record.rating, lat, lon, data)
        found = conn.execute(UPSERT_ROW, row).fetchone()
        if found is None:
            return False
        conn.execute("DELETE FROM view_places WHERE id = ?", found)
        if point is not None:
            conn.execute("INSERT INTO view_places VALUES (?, ?, ?, ?, ?)", (found[0], lat, lat, lon, lon))
        return True

    def remove_in(self, conn: sqlite3.Connection, record: Record) -> bool:
        """`remove` inside the caller's transaction."""
        found = conn.execute("DELETE FROM view_records WHERE dataset = ? AND entity = ? AND key = ? RETURNING id",
                             (self.dataset, record.entity, record.key)).fetchone()
        if found is not None:
            conn.execute("DELETE FROM view_places WHERE id = ?", found)
        return found is not None

    def apply_in(self, conn: sqlite3.Connection, changes: Iterable[Change]) -> int:
        """`apply` inside the caller's transaction (the processor may fold a snapshot's changes in its commit)."""
        applied = 0
        for change in changes:
            if change.dataset == self.dataset:
                done = [self.upsert_in(conn, r) if action == UPSERT else self.remove_in(conn, r)
                        for action, r in steps(change)]
                applied += any(done)
        return applied

    async def get(self, entity: str) -> Record | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT data FROM view_records WHERE dataset = ? AND entity = ?",
                               (self.dataset, entity)).fetchone()
            return None if row is None else bytes(row[0])
        data = await self.db.call(read)
        return None if data is None else record_from_dict(orjson.loads(data))

    async def near(self, lat: float, lon: float, radius_m: float, *, max_rating: int | None = None,
                   limit: int = DEFAULT_LIMIT) -> list[tuple[Record, float]]:
        center = query_center(lat, lon, radius_m, limit)
        box = Circle(center, radius_m).bbox
        args = (box.south, box.north, box.west, box.east, self.dataset, max_rating, max_rating)

        def read(conn: sqlite3.Connection) -> list[tuple[bytes, float]]:
            rows = conn.execute(IN_BOX, args)
            return nearest(((e, Point(la, lo), d) for e, la, lo, d in rows), center, radius_m, limit)
        found = await self.db.call(read)
        return [(record_from_dict(orjson.loads(data)), distance) for data, distance in found]

    async def apply(self, changes: Iterable[Change]) -> int:
        """All of `changes` in one transaction."""
        batch = list(changes)
        return await self.db.call(lambda conn: self.apply_in(conn, batch))

    async def aclose(self) -> None:
        if self._own_db:
            await self.db.close()
