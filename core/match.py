"""Which subscriptions does a change concern?

`Matcher` is the port; `GridIndex` is a correct, simple index: geographic areas are bucketed on a
fixed lat/lon grid by their bounding box (huge areas go to a short list checked every time),
admin areas by (level, code), and 'everywhere' subscriptions are always candidates. Candidates
are then checked exactly, so the result equals `brute_force` (a property test holds us to it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

from core.geo import ADMIN_LEVELS, AdminArea, AdminCodes, BBox, Point
from core.model import Change, Kind, Op, Record, Subscription

SOURCE_KINDS = frozenset({Kind.SOURCE_STALE, Kind.SOURCE_FAILING, Kind.SOURCE_RECOVERED})


class Matcher(Protocol):
    def add(self, subscription: Subscription) -> None: ...

    def remove(self, subscription_id: str) -> None: ...

    def match(self, change: Change) -> list[Subscription]: ...

    def __len__(self) -> int: ...


def _sides(change: Change) -> list[Record]:
    """A moved record matches where it was and where it is; a removed one where it was."""
    sides = [r for r in (change.after, change.before) if r is not None]
    if len(sides) == 2 and sides[0].point == sides[1].point and sides[0].admin == sides[1].admin:
        return sides[:1]
    return sides


def dataset_wide(change: Change) -> bool:
    """A source notice (core/health.py) concerns every subscription of its dataset, wherever its area."""
    return change.op is Op.NOTICE and change.kind in SOURCE_KINDS


def concerns(subscription: Subscription, change: Change) -> bool:
    """The exact test: the subscription is active, its area contains one side and its filter accepts it; a source
    notice needs only an active subscription whose filter admits the dataset."""
    if dataset_wide(change):
        datasets = subscription.filter.datasets
        return subscription.active and (not datasets or change.dataset in datasets)
    if not subscription.active or not subscription.filter.accepts(change, change.current.rating):
        return False
    return any(subscription.area.contains(r.point, r.admin) for r in _sides(change))


def brute_force(subscriptions: Iterable[Subscription], change: Change) -> list[Subscription]:
    return sorted((s for s in subscriptions if concerns(s, change)), key=lambda s: s.id)


class GridIndex:
    """In-memory index; `cell_deg` is the grid step, `max_cells` caps how many cells one area fills."""

    def __init__(self, subscriptions: Iterable[Subscription] = (), *, cell_deg: float = 0.1,
                 max_cells: int = 400) -> None:
        self._cell = cell_deg
        self._max_cells = max_cells
        self._subs: dict[str, Subscription] = {}
        self._grid: defaultdict[tuple[int, int], set[str]] = defaultdict(set)
        self._admin: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self._always: set[str] = set()
        for subscription in subscriptions:
            self.add(subscription)

    def __len__(self) -> int:
        return len(self._subs)

    def __contains__(self, subscription_id: object) -> bool:
        return subscription_id in self._subs

    def add(self, subscription: Subscription) -> None:
        self.remove(subscription.id)
        self._subs[subscription.id] = subscription
        area = subscription.area
        if isinstance(area, AdminArea):
            self._admin[(area.level, area.code)].add(subscription.id)
            return
        cells = self._cells(area.bbox)
        if cells is None:
            self._always.add(subscription.id)
            return
        for cell in cells:
            self._grid[cell].add(subscription.id)

    def remove(self, subscription_id: str) -> None:
        old = self._subs.pop(subscription_id, None)
        if old is None:
            return
        self._always.discard(subscription_id)
        if isinstance(old.area, AdminArea):
            self._admin[(old.area.level, old.area.code)].discard(subscription_id)
            return
        for cell in self._cells(old.area.bbox) or ():
            bucket = self._grid.get(cell)
            if bucket is not None:
                bucket.discard(subscription_id)
                if not bucket:
                    del self._grid[cell]

    def match(self, change: Change) -> list[Subscription]:
        if dataset_wide(change):
            return brute_force(self._subs.values(), change)
        ids = set(self._always)
        for record in _sides(change):
            ids |= self._candidates(record.point, record.admin)
        found = (self._subs[i] for i in ids)
        return sorted((s for s in found if concerns(s, change)), key=lambda s: s.id)

    def _candidates(self, point: Point | None, admin: AdminCodes) -> set[str]:
        ids: set[str] = set()
        if point is not None:
            ids |= self._grid.get(self._cell_of(point.lat, point.lon), set())
        for level in ADMIN_LEVELS:
            code = admin.get(level)
            if code:
                ids |= self._admin.get((level, code), set())
        return ids

    def _cell_of(self, lat: float, lon: float) -> tuple[int, int]:
        return math.floor(lat / self._cell), math.floor(lon / self._cell)

    def _cells(self, box: BBox | None) -> list[tuple[int, int]] | None:
        """The grid cells `box` covers, or None when unbounded or over the cap."""
        if box is None:
            return None
        south, west = self._cell_of(box.south, box.west)
        north, east = self._cell_of(box.north, box.east)
        if (north - south + 1) * (east - west + 1) > self._max_cells:
            return None
        return [(i, j) for i in range(south, north + 1) for j in range(west, east + 1)]
