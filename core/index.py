"""The subscription index: which subscriptions does a change concern, for one change or a whole snapshot's worth.

Every subscription is a row of numpy columns, in groups the compiled kernel reads a row at a time: its area
(circle centre, radius and precomputed band, or a box: a polygon's box, its rings apart), its state (dead, plain,
or with masks and rating bounds to check), its thematic filter as bit masks (datasets, kinds) and rating bounds,
and flags (live, `slow`: a filter that reads record fields). Areas sit in the nested grids of core/cells.py, admin
areas under keys past the grid's levels: a main sorted table, and a small delta table for rows added since it was
built, merged into the main one when it grows past an eighth of it; removals mark the row dead and are dropped at
that merge. 'Everywhere' and huge areas are checked every time. Adds and removes therefore cost O(1) amortised,
and the index never needs a rebuild.

Matching runs core/index_kernel.py's compiled pass when numba is installed (numpy over (side, candidate) arrays
otherwise). Python decides only what the kernel flags: a point within a micrometre of a circle's rim, and filters
that read record fields, once per distinct (filter, facts). The result equals `core.match.brute_force` (property
tests hold both paths to it).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from core import index_kernel
from core.cells import (
    EMPTY_TABLE,
    STEPS,
    CellTable,
    Ints,
    Rows,
    admin_key,
    circle_boxes,
    cover,
    point_keys,
    points_keys,
)
from core.geo import ADMIN_LEVELS, EARTH_RADIUS_M, AdminArea, AdminCodes, BBox, Circle, Everywhere, Point, Polygon
from core.index_kernel import (
    ADMIN,
    BOX,
    CIRCLE,
    DEAD,
    EVERYWHERE,
    FILTERED,
    NO_RATING,
    PLAIN,
    POLYGON,
    RIM_M,
    SLOW,
    UNSURE,
    rim_bands,
)
from core.match import concerns, dataset_wide, sides
from core.model import Change, Filter, Op, Record, Subscription

_PAD_DEG = 1e-9
_SORT_STEP = 0.16
# Columns in groups, each group one 2-D array with a row per subscription (what the compiled kernel reads: one
# subscription's fields share a cache line), each column a view.
_GROUPS: dict[str, tuple[type, tuple[str, ...]]] = {
    "shape": (np.float64, ("kind", "a", "b", "c", "d", "e", "f", "state")), "masks": (np.int64, ("datasets", "kinds")),
    "ratings": (np.int32, ("rmin", "rmax")), "flags": (np.bool_, ("slow", "live")), "fid": (np.int32, ("fid",))}
Row = tuple[int, float, float, float, float, float, float, float, int, int, int, int, bool, bool, int]
_ROW = np.dtype([(name, dtype) for dtype, names in _GROUPS.values() for name in names])  # a Row, in numpy
_ANY_ROW = (0, 0, NO_RATING, NO_RATING, False, -1)  # the thematic columns of Filter(): accepts everything


class _Bits:
    """Names (datasets or kinds) to bits of a 63-bit mask (int64: the compiled kernel compares signed integers
    only); the 64th name on has none (its filters go slow)."""

    def __init__(self) -> None:
        self._bits: dict[str, int] = {}

    def mask(self, names: Iterable[str], *, learn: bool) -> int | None:
        mask = 0
        for name in names:
            bit = self._bits.get(name)
            if bit is None and learn and len(self._bits) < 63:
                bit = self._bits[name] = len(self._bits)
            if bit is None:
                if learn:
                    return None
                continue
            mask |= 1 << bit
        return mask


@dataclass(slots=True)
class _Sides:
    """The located sides of a batch of changes: side i belongs to change `change[i]`."""

    change: Ints
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    records: list[Record]

    @classmethod
    def of(cls, changes: Sequence[Change], *, skip: set[int]) -> _Sides:
        owner, records = [], []
        for i, change in enumerate(changes):
            if i in skip:
                continue
            for record in sides(change):
                owner.append(i)
                records.append(record)
        lat = [r.point.lat if r.point is not None else np.nan for r in records]
        lon = [r.point.lon if r.point is not None else np.nan for r in records]
        return cls(np.array(owner, np.int64), np.array(lat, np.float64), np.array(lon, np.float64), records)


class _Rings:
    """Every polygon's rings, for the compiled kernel: `vertices` (lon, lat) rows, `index` one (first vertex, end,
    outer) row per ring, a polygon's outer ring first and its holes after it. Rings of removed polygons stay until
    the index renumbers its rows."""

    def __init__(self) -> None:
        self.vertices: npt.NDArray[np.float64] = np.empty((0, 2), np.float64)
        self.index: Ints = np.empty((0, 3), np.int64)
        self._vertices: list[tuple[float, float]] = []
        self._index: list[tuple[int, int, int]] = []
        self._vertex_count = self._ring_count = 0

    def add(self, area: Polygon) -> tuple[float, float]:
        """Queue the polygon's rings; (its first ring, its number of rings), as the row's e and f."""
        first = self._ring_count
        for poly in area.polygons:
            for outer, ring in enumerate(poly):
                self._index.append((self._vertex_count, self._vertex_count + len(ring), int(outer == 0)))
                self._vertices.extend(ring)
                self._vertex_count += len(ring)
                self._ring_count += 1
        return float(first), float(self._ring_count - first)

    def flush(self) -> None:
        if self._index:
            self.vertices = np.concatenate((self.vertices, np.array(self._vertices, np.float64).reshape(-1, 2)))
            self.index = np.concatenate((self.index, np.array(self._index, np.int64).reshape(-1, 3)))
            self._vertices, self._index = [], []


@dataclass(slots=True)
class _Asked:
    """What each change of a batch offers the thematic masks: masks[0] its dataset's bit, masks[1] its kinds' bits,
    and its rating (NO_RATING when none)."""

    masks: Ints
    ratings: Ints

    @classmethod
    def of(cls, changes: Sequence[Change], datasets: _Bits, kinds: _Bits) -> _Asked:
        masks = np.array([[datasets.mask((c.dataset,), learn=False) or 0 for c in changes],
                          [kinds.mask(c.kinds, learn=False) or 0 for c in changes]], np.int64).reshape(2, len(changes))
        return cls(masks, np.array([_rating(c) for c in changes], np.int64))


class SubscriptionIndex:
    """core.match.Matcher; `match` for one change (streams), `match_many` / `match_pairs` for a batch (snapshots)."""

    def __init__(self, subscriptions: Iterable[Subscription] = (), *, merge_at: int = 4096,
                 compact_at: int = 1024, compiled: bool | None = None) -> None:
        """`merge_at`: delta entries (and at least an eighth of main) that trigger its merge into main;
        `compact_at`: removed rows (and more than the live ones) that trigger renumbering; `compiled`: match with
        core/index_kernel.py (True: required, None: when numba is installed, False: numpy only)."""
        self._compiled = compiled
        self._kernel = index_kernel.kernel() if compiled is not False else None
        if compiled and self._kernel is None:
            raise RuntimeError("the compiled subscription index needs numba: pip install 'vigie[fast]'")
        self._merge_at, self._compact_at = merge_at, compact_at
        self._subs: list[Subscription | None] = []
        self._row: dict[str, int] = {}
        self._codes: dict[str, dict[str, int]] = {}  # admin level → code → its admin cell key
        self._rings = _Rings()
        self._always: set[int] = set()
        self._datasets, self._kinds = _Bits(), _Bits()
        self._fids: dict[str, int] = {}  # a slow filter's repr: its number, so equal filters are decided once
        self._filters: list[Filter] = []
        self._fields_read: tuple[str, ...] = ()  # every record field a slow filter reads
        self._grid: dict[str, npt.NDArray[Any]] = {}
        self._cols: dict[str, npt.NDArray[Any]] = {}
        self._reserve(0)
        self._size = 0  # rows written to the columns; rows past it are pending
        self._pending: list[Row] = []
        self._main, self._delta = EMPTY_TABLE, EMPTY_TABLE
        self._dead = 0
        self._add_all({subscription.id: subscription for subscription in subscriptions}.values())
        self._flush()

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._row

    def add(self, subscription: Subscription) -> None:
        self.remove(subscription.id)
        row = len(self._subs)
        self._subs.append(subscription)
        self._row[subscription.id] = row
        values = self._values(subscription)
        self._pending.append(values)
        if values[0] == EVERYWHERE:
            self._always.add(row)

    def _add_all(self, subscriptions: Iterable[Subscription]) -> None:
        """Add subscriptions of distinct ids to an empty index, areas near one another on nearby rows, so a cell's
        candidates share cache lines: ordered by the 0.16° cell of the circle's centre or the box's corner (admin
        and 'everywhere' last)."""
        items = list(subscriptions)
        if not items:
            return
        values = [self._values(subscription) for subscription in items]
        table = _rows_table(values)
        kind = table["kind"]
        spatial = (kind == CIRCLE) | (kind == BOX) | (kind == POLYGON)
        lat_cell = np.where(spatial, np.floor((table["a"] + 90.0) / _SORT_STEP), np.inf)
        lon_cell = np.where(spatial, np.floor((table["b"] + 180.0) / _SORT_STEP), table["a"])  # admin: by code
        order = np.lexsort((lon_cell, lat_cell))
        start = len(self._subs)
        ordered = [items[i] for i in order.tolist()]
        self._subs.extend(ordered)
        self._row.update(zip([s.id for s in ordered], range(start, start + len(ordered)), strict=True))
        self._always.update((start + np.flatnonzero(kind[order] == EVERYWHERE)).tolist())
        self._write(table[order])

    def remove(self, subscription_id: str) -> None:
        row = self._row.pop(subscription_id, None)
        if row is None:
            return
        self._subs[row] = None
        self._always.discard(row)
        if row >= self._size:
            self._flush()
        self._cols["live"][row] = False
        self._cols["state"][row] = DEAD
        self._dead += 1
        if self._dead > self._compact_at and self._dead > len(self._row):
            self._compact()

    def match(self, change: Change) -> list[Subscription]:
        """One change (a stream's): the compiled kernel on inputs built from scalars, without match_pairs' numpy
        set-up, which costs more than the matching itself for a single change; Python then sees only the rows
        the kernel was unsure of and the rows with slow filters."""
        if self._kernel is None or dataset_wide(change):
            return self.match_many((change,))[0]
        self._flush()
        located = _Sides.of((change,), skip=set())
        records = located.records
        keys = np.full((len(STEPS) + len(ADMIN_LEVELS), len(records)), -1, np.int64)
        for i, record in enumerate(records):  # the scalar form: numpy's costs more for one point
            if record.point is not None:
                keys[:len(STEPS), i] = point_keys(record.point.lat, record.point.lon)
        keys[len(STEPS):] = self._admin_keys(records)
        side, rows, check = self._compiled_match(keys, located, _Asked.of((change,), self._datasets, self._kinds))
        keep = np.ones(len(rows), np.bool_)
        for i in np.flatnonzero(check & UNSURE).tolist():  # within a micrometre of a circle's rim
            keep[i] = self._holds(int(rows[i]), records[int(side[i])])
        rows, slow = rows[keep], (check[keep] & SLOW) != 0
        if len(records) > 1:  # a moved record: a row may hold both of its places
            rows = np.unique(rows)
            slow = self._cols["slow"][rows]
        if slow.any():
            verdicts: dict[int, bool] = {}
            fids = self._cols["fid"][rows].tolist()
            for i in np.flatnonzero(slow).tolist():
                fid = fids[i]
                if fid not in verdicts:
                    verdicts[fid] = self._filters[fid].accepts(change, change.current.rating)
                slow[i] = not verdicts[fid]
            rows = rows[~slow]
        subs = self._subs
        found = [subs[row] for row in rows.tolist()]
        return sorted([sub for sub in found if sub is not None], key=_ident)

    def match_many(self, changes: Sequence[Change]) -> list[list[Subscription]]:
        """The subscriptions each change concerns, each list sorted by subscription id."""
        which, rows = self.match_pairs(changes)
        found: list[list[Subscription]] = [[] for _ in changes]
        subs = self._subs
        for i, row in zip(which.tolist(), rows.tolist(), strict=True):
            sub = subs[row]
            if sub is not None:
                found[i].append(sub)
        for lst in found:
            if len(lst) > 1:
                lst.sort(key=_ident)
        return found

    def match_pairs(self, changes: Sequence[Change]) -> tuple[Ints, Rows]:
        """(change index, row) of every match, unique; rows index `subscription_at`."""
        self._flush()
        wide = [i for i, change in enumerate(changes) if dataset_wide(change)]
        located = _Sides.of(changes, skip=set(wide))
        asked = _Asked.of(changes, self._datasets, self._kinds)
        which, rows, slow = self._geometry(located, asked)
        if np.any(np.diff(located.change) == 0):  # a moved record has two sides: the same row may match both
            span = len(self._subs) + 1
            pair = np.unique(which * span + rows)
            which, rows, slow = pair // span, (pair % span).astype(np.int32), None
        which, rows = self._slow_filters(changes, which, rows, slow)
        if not wide:
            return which, rows
        wide_which, wide_rows = self._dataset_wide(changes, wide)
        return np.concatenate((which, wide_which)), np.concatenate((rows, wide_rows))

    def _dataset_wide(self, changes: Sequence[Change], wide: list[int]) -> tuple[Ints, Rows]:
        """Source notices (core.match.dataset_wide) concern every active subscription of their dataset: rare,
        decided by `concerns` itself."""
        pairs = [(i, row) for i in wide for row, sub in enumerate(self._subs)
                 if sub is not None and concerns(sub, changes[i])]
        return np.array([i for i, _ in pairs], np.int64), np.array([r for _, r in pairs], np.int32)

    def subscription_at(self, row: int) -> Subscription | None:
        return self._subs[row]

    # -- writing ---------------------------------------------------------------------------------------------------

    def _values(self, subscription: Subscription) -> Row:
        area = subscription.area
        datasets, kinds, low, high, slow, fid = self._thematic_row(subscription.filter)
        live = subscription.active
        if isinstance(area, Circle):  # d, e, f: written by _flush (most subscriptions: the short way)
            center = area.center
            return (CIRCLE, center.lat, center.lon, area.radius_m, 0.0, 0.0, 0.0, 0.0, datasets, kinds, low, high,
                    slow, live, fid)
        shape: tuple[int, float, float, float, float, float, float, float]
        if isinstance(area, BBox):
            box = area.bbox
            shape = (BOX, box.south, box.west, box.north, box.east, 0.0, 0.0, 0.0)
        elif isinstance(area, Polygon):  # e, f: its rings in _rings
            box = area.bbox
            shape = (POLYGON, box.south, box.west, box.north, box.east, *self._rings.add(area), 0.0)
        elif isinstance(area, AdminArea):  # its cell is the code's: `a` holds the key
            known = self._codes.setdefault(area.level, {})
            key = known.setdefault(area.code, admin_key(ADMIN_LEVELS.index(area.level), len(known)))
            shape = (ADMIN, float(key), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        elif isinstance(area, Everywhere):
            shape = (EVERYWHERE, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        else:
            raise TypeError(f"unknown area type {type(area).__name__}")
        return (*shape, datasets, kinds, low, high, slow, live, fid)

    def _thematic_row(self, f: Filter) -> tuple[int, int, int, int, bool, int]:
        """A filter's columns: its masks, rating bounds, whether Python must decide it (slow) and its number."""
        if not (f.datasets or f.kinds or f.activities or f.where is not None or f.min_rating is not None
                or f.max_rating is not None):
            return _ANY_ROW  # most subscriptions: no filter at all
        datasets = self._datasets.mask(f.datasets, learn=True)
        kinds = self._kinds.mask(f.kinds, learn=True)
        slow = f.reads_fields or datasets is None or kinds is None
        fid = -1
        if slow:
            fid = self._fids.setdefault(repr(f), len(self._fids))
            if fid == len(self._filters):
                self._filters.append(f)
                self._fields_read = tuple(sorted(set(self._fields_read) | f.fields_read))
        return (datasets or 0, kinds or 0, NO_RATING if f.min_rating is None else f.min_rating,
                NO_RATING if f.max_rating is None else f.max_rating, slow, fid)

    def _flush(self) -> None:
        """Write pending rows to the columns and their cells to the delta table (merged into main when big)."""
        if not self._pending:
            return
        table, self._pending = _rows_table(self._pending), []
        self._write(table)

    def _write(self, table: npt.NDArray[Any]) -> None:
        """Rows (a _ROW structured array) to the columns after the last written one, with their derived columns
        and cells."""
        start, count = self._size, len(table)
        self._reserve(start + count)
        for name, column in self._cols.items():
            column[start:start + count] = table[name]
        self._size = start + count
        self._rings.flush()
        c = {name: column[start:start + count] for name, column in self._cols.items()}
        circle = c["kind"] == CIRCLE  # what the compiled kernel's trigonometry-light test reads
        c["d"][circle] = np.cos(np.radians(c["a"][circle]))
        c["e"][circle], c["f"][circle] = rim_bands(c["c"][circle])
        filtered = ((c["datasets"] != 0) | (c["kinds"] != 0) | (c["rmin"] != NO_RATING) | (c["rmax"] != NO_RATING))
        c["state"][:] = np.where(c["live"], np.where(filtered, FILTERED, PLAIN), DEAD)
        fresh = self._cells(start, count)
        live = self._cols["live"]
        self._delta = self._delta.merged(fresh, live)
        if len(self._delta) > max(self._merge_at, len(self._main) // 8):
            self._main, self._delta = self._main.merged(self._delta, live), EMPTY_TABLE

    def _cells(self, start: int, count: int) -> CellTable:
        c = {name: column[start:start + count] for name, column in self._cols.items()}
        spatial = np.flatnonzero((c["kind"] == CIRCLE) | (c["kind"] == BOX) | (c["kind"] == POLYGON))
        south, west, north, east = (c[k][spatial].copy() for k in "abcd")
        circles = c["kind"][spatial] == CIRCLE
        if circles.any():
            boxes = circle_boxes(south[circles], west[circles], north[circles], EARTH_RADIUS_M, _PAD_DEG)
            south[circles], west[circles], north[circles], east[circles] = boxes
        covered = (index_kernel.cover if self._kernel is not None else cover)(south, west, north, east)
        self._always.update((start + spatial[covered.huge]).tolist())
        admin = np.flatnonzero(c["kind"] == ADMIN)
        keys = np.concatenate((covered.keys, c["a"][admin].astype(np.int64)))
        rows = np.concatenate((start + spatial[covered.owners], start + admin)).astype(np.int32)
        return CellTable.of(keys, rows)

    def _reserve(self, size: int) -> None:
        had = bool(self._grid)
        capacity = self._grid["shape"].shape[0] if had else 0
        if had and size <= capacity:
            return
        grown = max(size, capacity * 2, 1024)
        for group, (dtype, names) in _GROUPS.items():
            bigger = np.zeros((grown, len(names)), dtype)
            if had:
                bigger[:capacity] = self._grid[group]
            self._grid[group] = bigger
            for i, name in enumerate(names):
                self._cols[name] = bigger[:, i]

    def _compact(self) -> None:
        """Renumber the rows once removed ones outnumber the others."""
        fresh = SubscriptionIndex((s for s in self._subs if s is not None), merge_at=self._merge_at,
                                  compact_at=self._compact_at, compiled=self._compiled)
        for name in ("_subs", "_row", "_codes", "_rings", "_always", "_datasets", "_kinds", "_fids", "_filters",
                     "_fields_read", "_grid", "_cols", "_size", "_pending", "_main", "_delta", "_dead"):
            setattr(self, name, getattr(fresh, name))

    # -- reading ---------------------------------------------------------------------------------------------------

    def _compiled_match(self, keys: Ints, located: _Sides, asked: _Asked) -> tuple[Ints, Rows, Any]:
        """core/index_kernel.py's `_match` on the index's tables: (side, row, check) of every candidate that
        passes."""
        kernel, g = self._kernel, self._grid
        if kernel is None:
            raise RuntimeError("the compiled kernel is not loaded")
        return kernel(keys, located.lat, located.lon, located.change, asked.masks, asked.ratings, self._main.keys,
                      self._main.rows, self._delta.keys, self._delta.rows,
                      np.fromiter(self._always, np.int32, len(self._always)), g["shape"], g["masks"], g["ratings"],
                      self._cols["slow"], self._rings.index, self._rings.vertices)

    def _geometry(self, located: _Sides, asked: _Asked) -> tuple[Ints, Rows, Ints | None]:
        """(change, row) of every live area that holds a side's point and whose masks and rating bounds accept the
        change: cells, then the exact test (compiled when numba is there, numpy otherwise); and the positions of the
        pairs whose filter reads fields, when known (None: look them up)."""
        n = len(located.records)
        keys = np.concatenate((points_keys(located.lat, located.lon), self._admin_keys(located.records)))
        if self._kernel is not None:
            side, rows, check = self._compiled_match(keys, located, asked)
            flagged = np.flatnonzero(check)  # few: Python's share, found without a pass over every pair per bit
            marks = check[flagged]
            which, slow = located.change[side], flagged[(marks & SLOW) != 0]
            outside = [i for i in flagged[(marks & UNSURE) != 0].tolist()
                       if not self._holds(int(rows[i]), located.records[int(side[i])])]
            if not outside:
                return which, rows, slow
            keep = np.ones(len(rows), np.bool_)
            keep[outside] = False
            return which[keep], rows[keep], None
        # numpy: the same question over (side, candidate) arrays
        always = np.fromiter(self._always, np.int32, len(self._always))
        keys = keys.ravel()
        owner = np.tile(np.arange(n, dtype=np.int64), len(keys) // max(n, 1))
        located_keys = keys >= 0
        keys, owner = keys[located_keys], owner[located_keys]
        q_main, r_main = self._main.expand(keys)
        q_delta, r_delta = self._delta.expand(keys)
        side = np.concatenate((owner[q_main], owner[q_delta],
                               np.repeat(np.arange(n, dtype=np.int64), len(always))))
        rows = np.concatenate((r_main, r_delta, np.tile(always, n)))
        accepted = self._thematic(asked, located.change[side], rows)
        side, rows = side[accepted], rows[accepted]
        inside, unsure = self._inside(located.lat[side], located.lon[side], rows)
        for i in np.flatnonzero(unsure).tolist():
            inside[i] = self._holds(int(rows[i]), located.records[int(side[i])])
        return located.change[side[inside]], rows[inside], None

    def _holds(self, row: int, record: Record) -> bool:
        """core.geo's verdict, for what the vectorised test left unsure."""
        sub = self._subs[row]
        return sub is not None and sub.area.contains(record.point, record.admin)

    def _inside(self, lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64],
                rows: Rows) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """(inside, unsure): numpy's verdict, and where Python must decide (polygons, points on a circle's rim)."""
        cols = self._cols
        kind = cols["kind"][rows]
        a, b, c, d = (cols[k][rows] for k in "abcd")
        inside = (kind == EVERYWHERE) | (kind == ADMIN)  # an admin row is a candidate only in its code's cell
        circle = np.flatnonzero(kind == CIRCLE)
        distance = _haversine(a[circle], b[circle], lat[circle], lon[circle])
        inside[circle] = distance <= c[circle]
        unsure = np.zeros(len(rows), np.bool_)
        unsure[circle] = np.abs(distance - c[circle]) <= RIM_M
        boxed = (kind == BOX) | (kind == POLYGON)
        in_box = boxed & (a <= lat) & (lat <= c) & (b <= lon) & (lon <= d)
        inside |= in_box & (kind == BOX)
        unsure |= in_box & (kind == POLYGON)
        return inside, unsure

    def _admin_keys(self, records: Sequence[Record]) -> Ints:
        """Shape (admin levels, sides): the admin cell key of each side's code at each level; -1 when no
        subscription watches that code (levels nobody watches are not looked at)."""
        out = np.full((len(ADMIN_LEVELS), len(records)), -1, np.int64)
        for level, name in enumerate(ADMIN_LEVELS):
            known = self._codes.get(name)
            if known:
                out[level] = [known.get(getattr(record.admin, name) or "", -1) for record in records]
        return out

    def _thematic(self, asked: _Asked, which: Ints, rows: Rows) -> npt.NDArray[np.bool_]:
        """Live rows whose datasets, kinds and rating bounds accept their change (bit masks, in numpy)."""
        cols = self._cols
        ds, kd = cols["datasets"][rows], cols["kinds"][rows]
        rating, rmin, rmax = asked.ratings[which], cols["rmin"][rows], cols["rmax"][rows]
        rated = rating != NO_RATING
        accepted: npt.NDArray[np.bool_] = (cols["live"][rows] & ((ds == 0) | ((ds & asked.masks[0][which]) != 0))
                & ((kd == 0) | ((kd & asked.masks[1][which]) != 0))
                & ((rmin == NO_RATING) | (rated & (rating >= rmin)))
                & ((rmax == NO_RATING) | (rated & (rating <= rmax))))
        return accepted

    def _slow_filters(self, changes: Sequence[Change], which: Ints, rows: Rows,
                      slow: Ints | None = None) -> tuple[Ints, Rows]:
        """Filters that read record fields (activities, where) or did not fit the masks: decided by Python once per
        distinct (filter, facts), however many subscriptions share the filter and however many changes share the
        facts the filters read (a snapshot's thousands of restaurants are a few dozen activities and four
        ratings)."""
        if slow is None:
            slow = np.flatnonzero(self._cols["slow"][rows])
        if not len(slow):
            return which, rows
        slow_which = which[slow]
        facts = np.full(len(changes), -1, np.int64)
        seen: dict[object, int] = {}
        names = self._fields_read
        for i in np.unique(slow_which).tolist():  # what slow filters can see of change i: equal facts, equal verdicts
            change = changes[i]
            current = change.current
            fields = current.fields
            seen_as = (change.dataset, change.kinds, change.op, change.changed, current.rating,
                       *[fields.get(name) for name in names])
            try:
                facts[i] = seen.setdefault(seen_as, len(seen))
            except TypeError:  # a field value that cannot be hashed (a list): the change is its own case
                facts[i] = seen.setdefault(("change", i), len(seen))
        fid = self._cols["fid"][rows[slow]].astype(np.int64)
        asked, first, inverse = np.unique(fid * len(seen) + facts[slow_which], return_index=True,
                                          return_inverse=True)
        verdicts = np.fromiter((self._filters[int(f)].accepts(c, c.current.rating)
                                for f, c in zip((asked // len(seen)).tolist(),
                                                (changes[i] for i in slow_which[first].tolist()), strict=True)),
                               np.bool_, len(asked))
        keep = np.ones(len(rows), np.bool_)
        keep[slow] = verdicts[inverse.ravel()]
        return which[keep], rows[keep]


def _rows_table(rows: list[Row]) -> npt.NDArray[Any]:
    return np.array(rows, dtype=_ROW)


def _rating(change: Change) -> int:
    rating = change.current.rating
    return NO_RATING if rating is None else rating


_ident = operator.attrgetter("id")


def warm_up() -> bool:
    """Match once, so the compiled kernel is compiled (or loaded) now rather than on a process's first change;
    whether it is compiled (False: numba is absent, numpy matches)."""
    area = Circle(Point(48.8566, 2.3522), 1000.0)
    index = SubscriptionIndex([Subscription("warm-up", area, "console://")])
    record = Record("warm-up", "k", {}, "f", area.center, AdminCodes())
    index.match_many([Change("warm-up", "warm-up", "k", Op.CREATED, ("new_inspection",), None, record, (),
                             datetime(2020, 1, 1, tzinfo=UTC), "v")])
    return index._kernel is not None


def _haversine(lat1: npt.NDArray[np.float64], lon1: npt.NDArray[np.float64], lat2: npt.NDArray[np.float64],
               lon2: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """core.geo.haversine_m over arrays, from (lat1, lon1) to (lat2, lon2)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = phi2 - phi1, np.radians(lon2 - lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    result: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return result
