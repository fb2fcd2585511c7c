"""The subscription index: which subscriptions does a change concern, for one change or a whole snapshot's worth.

Every subscription is a row of numpy columns: its area (circle centre and radius, or a box: a polygon's box, its
exact test left to Python), its thematic filter as bit masks (datasets, kinds) and rating bounds, and flags (live,
`slow`: a filter that reads record fields). Areas sit in the nested grids of core/cells.py: a main sorted table,
and a small delta table for rows added since it was built, merged into the main one when it grows past an eighth of
it; removals clear `live` and are dropped at that merge. Admin codes are a dict, 'everywhere' and huge areas a set
checked every time. Adds and removes therefore cost O(1) amortised, and the index never needs a rebuild.

Matching is vectorised over (change side, candidate row) pairs: cell lookup, then the thematic masks and the exact
geometry in numpy. Python only decides what numpy cannot: a polygon's rings, a point within a micrometre of a
circle's rim (numpy's trigonometry may differ from `math`'s in the last bit), and `where` / activity filters. The
result equals `core.match.brute_force` (a property test holds us to it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from core.cells import EMPTY_TABLE, CellTable, Ints, Rows, circle_boxes, cover, points_keys
from core.geo import ADMIN_LEVELS, EARTH_RADIUS_M, AdminArea, BBox, Circle, Everywhere, Polygon
from core.match import concerns, dataset_wide, sides
from core.model import Change, Record, Subscription

CIRCLE, BOX, POLYGON, ADMIN, EVERYWHERE = 1, 2, 3, 4, 5
NO_RATING = -(2**31)
RIM_M = 1e-6  # a point this close to a circle's rim is decided by core.geo in Python
_PAD_DEG = 1e-9
_COLUMNS = {"kind": np.uint8, "a": np.float64, "b": np.float64, "c": np.float64, "d": np.float64,
            "datasets": np.uint64, "kinds": np.uint64, "rmin": np.int32, "rmax": np.int32,
            "slow": np.bool_, "live": np.bool_}
Row = tuple[int, float, float, float, float, int, int, int, int, bool, bool]


class _Bits:
    """Names (datasets or kinds) to bits of a 64-bit mask; the 65th name on has none (its filters go slow)."""

    def __init__(self) -> None:
        self._bits: dict[str, int] = {}

    def mask(self, names: Iterable[str], *, learn: bool) -> int | None:
        mask = 0
        for name in names:
            bit = self._bits.get(name)
            if bit is None and learn and len(self._bits) < 64:
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


class SubscriptionIndex:
    """core.match.Matcher; `match` for one change (streams), `match_many` / `match_pairs` for a batch (snapshots)."""

    def __init__(self, subscriptions: Iterable[Subscription] = (), *, merge_at: int = 4096,
                 compact_at: int = 1024) -> None:
        """`merge_at`: delta entries (and at least an eighth of main) that trigger its merge into main;
        `compact_at`: removed rows (and more than the live ones) that trigger renumbering."""
        self._merge_at, self._compact_at = merge_at, compact_at
        self._subs: list[Subscription | None] = []
        self._row: dict[str, int] = {}
        self._admin: dict[tuple[str, str], set[int]] = {}
        self._always: set[int] = set()
        self._datasets, self._kinds = _Bits(), _Bits()
        self._cols: dict[str, npt.NDArray[Any]] = {name: np.empty(0, dtype) for name, dtype in _COLUMNS.items()}
        self._size = 0  # rows written to the columns; rows past it are pending
        self._pending: list[Row] = []
        self._main, self._delta = EMPTY_TABLE, EMPTY_TABLE
        self._dead = 0
        for subscription in subscriptions:
            self.add(subscription)
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
        area = subscription.area
        if isinstance(area, AdminArea):
            self._admin.setdefault((area.level, area.code), set()).add(row)
        elif values[0] == EVERYWHERE:
            self._always.add(row)

    def remove(self, subscription_id: str) -> None:
        row = self._row.pop(subscription_id, None)
        if row is None:
            return
        old = self._subs[row]
        self._subs[row] = None
        self._always.discard(row)
        if old is not None and isinstance(old.area, AdminArea):
            self._admin[(old.area.level, old.area.code)].discard(row)
        if row >= self._size:
            self._flush()
        self._cols["live"][row] = False
        self._dead += 1
        if self._dead > self._compact_at and self._dead > len(self._row):
            self._compact()

    def match(self, change: Change) -> list[Subscription]:
        return self.match_many((change,))[0]

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
        side, rows = self._geometry(located)
        admin_which, admin_rows = self._admin_pairs(located)
        which = np.concatenate((located.change[side], admin_which))
        rows = np.concatenate((rows, admin_rows))
        if np.any(np.diff(located.change) == 0):  # a moved record has two sides: the same row may match both
            span = len(self._subs) + 1
            pair = np.unique(which * span + rows)
            which, rows = pair // span, (pair % span).astype(np.int32)
        keep = self._thematic(changes, which, rows)
        which, rows = self._slow_filters(changes, which[keep], rows[keep])
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
        area, f = subscription.area, subscription.filter
        datasets = self._datasets.mask(f.datasets, learn=True)
        kinds = self._kinds.mask(f.kinds, learn=True)
        slow = f.reads_fields or datasets is None or kinds is None
        ratings = (NO_RATING if f.min_rating is None else f.min_rating,
                   NO_RATING if f.max_rating is None else f.max_rating)
        shape: tuple[int, float, float, float, float]
        if isinstance(area, Circle):
            shape = (CIRCLE, area.center.lat, area.center.lon, area.radius_m, 0.0)
        elif isinstance(area, BBox | Polygon):
            box = area.bbox
            shape = (BOX if isinstance(area, BBox) else POLYGON, box.south, box.west, box.north, box.east)
        elif isinstance(area, AdminArea | Everywhere):
            shape = (ADMIN if isinstance(area, AdminArea) else EVERYWHERE, 0.0, 0.0, 0.0, 0.0)
        else:
            raise TypeError(f"unknown area type {type(area).__name__}")
        return (*shape, datasets or 0, kinds or 0, *ratings, slow, subscription.active)

    def _flush(self) -> None:
        """Write pending rows to the columns and their cells to the delta table (merged into main when big)."""
        if not self._pending:
            return
        start, count = self._size, len(self._pending)
        self._reserve(start + count)
        for column, values in zip(self._cols.values(), zip(*self._pending, strict=True), strict=True):
            column[start:start + count] = values
        self._size, self._pending = start + count, []
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
        covered = cover(south, west, north, east)
        self._always.update((start + spatial[covered.huge]).tolist())
        return CellTable.of(covered.keys, (start + spatial[covered.owners]).astype(np.int32))

    def _reserve(self, size: int) -> None:
        capacity = len(self._cols["kind"])
        if size <= capacity:
            return
        grown = max(size, capacity * 2, 1024)
        for name, column in self._cols.items():
            bigger = np.zeros(grown, column.dtype)
            bigger[:capacity] = column
            self._cols[name] = bigger

    def _compact(self) -> None:
        """Renumber the rows once removed ones outnumber the others."""
        fresh = SubscriptionIndex((s for s in self._subs if s is not None), merge_at=self._merge_at,
                                  compact_at=self._compact_at)
        for name in ("_subs", "_row", "_admin", "_always", "_datasets", "_kinds", "_cols", "_size", "_pending",
                     "_main", "_delta", "_dead"):
            setattr(self, name, getattr(fresh, name))

    # -- reading ---------------------------------------------------------------------------------------------------

    def _geometry(self, located: _Sides) -> tuple[Ints, Rows]:
        """(side, row) of every live area that holds the side's point: cells, then the exact test."""
        n = len(located.records)
        keys = points_keys(located.lat, located.lon).ravel()
        owner = np.tile(np.arange(n, dtype=np.int64), len(keys) // max(n, 1))
        located_keys = keys >= 0
        keys, owner = keys[located_keys], owner[located_keys]
        q_main, r_main = self._main.expand(keys)
        q_delta, r_delta = self._delta.expand(keys)
        always = np.fromiter(self._always, np.int32, len(self._always))
        side = np.concatenate((owner[q_main], owner[q_delta], np.repeat(np.arange(n, dtype=np.int64), len(always))))
        rows = np.concatenate((r_main, r_delta, np.tile(always, n)))
        live = self._cols["live"][rows]
        side, rows = side[live], rows[live]
        inside, unsure = self._inside(located.lat[side], located.lon[side], rows)
        for i in np.flatnonzero(unsure).tolist():
            sub, record = self._subs[int(rows[i])], located.records[int(side[i])]
            inside[i] = sub is not None and sub.area.contains(record.point, record.admin)
        return side[inside], rows[inside]

    def _inside(self, lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64],
                rows: Rows) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """(inside, unsure): numpy's verdict, and where Python must decide (polygons, points on a circle's rim)."""
        cols = self._cols
        kind = cols["kind"][rows]
        a, b, c, d = (cols[k][rows] for k in "abcd")
        inside = kind == EVERYWHERE
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

    def _admin_pairs(self, located: _Sides) -> tuple[Ints, Rows]:
        which: list[int] = []
        rows: list[int] = []
        if self._admin:
            for i, record in enumerate(located.records):
                for level in ADMIN_LEVELS:
                    code = record.admin.get(level)
                    found = self._admin.get((level, code)) if code else None
                    if found:
                        which.extend([int(located.change[i])] * len(found))
                        rows.extend(found)
        return np.array(which, np.int64), np.array(rows, np.int32)

    def _thematic(self, changes: Sequence[Change], which: Ints, rows: Rows) -> npt.NDArray[np.bool_]:
        """Live rows whose datasets, kinds and rating bounds accept their change (bit masks, in numpy)."""
        datasets = np.array([self._datasets.mask((c.dataset,), learn=False) or 0 for c in changes], np.uint64)
        kinds = np.array([self._kinds.mask(c.kinds, learn=False) or 0 for c in changes], np.uint64)
        ratings = np.array([_rating(c) for c in changes], np.int64)
        cols = self._cols
        ds, kd = cols["datasets"][rows], cols["kinds"][rows]
        rating, rmin, rmax = ratings[which], cols["rmin"][rows], cols["rmax"][rows]
        rated = rating != NO_RATING
        accepted: npt.NDArray[np.bool_] = (cols["live"][rows] & ((ds == 0) | ((ds & datasets[which]) != 0))
                & ((kd == 0) | ((kd & kinds[which]) != 0))
                & ((rmin == NO_RATING) | (rated & (rating >= rmin)))
                & ((rmax == NO_RATING) | (rated & (rating <= rmax))))
        return accepted

    def _slow_filters(self, changes: Sequence[Change], which: Ints, rows: Rows) -> tuple[Ints, Rows]:
        """Filters that read record fields (activities, where) or did not fit the masks: decided by Python."""
        slow = np.flatnonzero(self._cols["slow"][rows])
        if not len(slow):
            return which, rows
        keep = np.ones(len(rows), np.bool_)
        for i in slow.tolist():
            sub, change = self._subs[int(rows[i])], changes[int(which[i])]
            keep[i] = sub is not None and sub.filter.accepts(change, change.current.rating)
        return which[keep], rows[keep]


def _rating(change: Change) -> int:
    rating = change.current.rating
    return NO_RATING if rating is None else rating


def _ident(subscription: Subscription) -> str:
    return subscription.id


def _haversine(lat1: npt.NDArray[np.float64], lon1: npt.NDArray[np.float64], lat2: npt.NDArray[np.float64],
               lon2: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """core.geo.haversine_m over arrays, from (lat1, lon1) to (lat2, lon2)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi, dlmb = phi2 - phi1, np.radians(lon2 - lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    result: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return result
