"""Current-state view: the latest record of each entity (an establishment), by location and rating.

It answers "safe places near me" (the Telegram bot, the partner lookup API). Two implementations pass the
same contract suite: `view_sqlite.SqliteCurrentView` (R*Tree, embedded) and `view_redis.RedisCurrentView`
(one GEO set per rating, distributed).

Semantics, the same in both:

- One view per dataset. A record stands for its entity (`Record.entity`: the establishment of an inspection).
- An entity shows only its **latest** record, by the dataset profile's order (Alim'Confiance: date of
  inspection), ties broken by record key. A record older than the one shown is ignored; a new version of
  the record shown replaces it.
- `apply(changes)` folds the diff's changes in: created/updated → upsert; removed/aged_out → remove that
  record. **The view holds only what the dataset currently publishes, and keeps no history:** when the
  record an entity shows is removed, the entity leaves the view, even if the dataset still lists an older
  inspection of it; it comes back with its next inspection.
- Records without a point (about 3-4% of Alim'Confiance, and any beyond ±85.05° latitude, which Redis GEO
  cannot index) are kept and found by `get`, never by `near`.
- `near` keeps records within `radius_m` by great-circle distance (core.geo.haversine_m) and, given
  `max_rating`, rated at most that (1 = Très satisfaisant … 4 = urgent; unrated records are then left out);
  nearest first, ties by entity, at most `limit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple, TypeVar

from core.geo import Point, haversine_m
from core.model import Change, Op, Record
from core.ports import DEFAULT_LIMIT, CurrentView
from core.profiles import Profile

__all__ = [
    "DEFAULT_LIMIT", "GEO_MAX_LAT", "MAX_RADIUS_M", "REMOVE", "UPSERT", "CurrentView", "Step", "check_dataset",
    "nearest", "placeable", "query_center", "rank", "rated_at_most", "steps",
]

T = TypeVar("T")
MAX_RADIUS_M = 1_000_000.0
GEO_MAX_LAT = 85.05112878  # the latitude range Redis GEO (Web Mercator) can index
UPSERT: Literal["upsert"] = "upsert"
REMOVE: Literal["remove"] = "remove"


class Step(NamedTuple):
    action: Literal["upsert", "remove"]
    record: Record


def rank(record: Record, profile: Profile) -> str:
    """What orders an entity's records: profile order, then key.

    Both stores compare it byte by byte (SQLite's BINARY collation, a byte loop in Lua); a record replaces the
    one its entity shows when it has the same key or a rank not lower.
    """
    return f"{profile.order(record)}\x1f{record.key}"


def placeable(record: Record) -> Point | None:
    """The record's point if `near` can find it there."""
    point = record.point
    return point if point is not None and abs(point.lat) <= GEO_MAX_LAT else None


def query_center(lat: float, lon: float, radius_m: float, limit: int) -> Point:
    """Check a `near` query; ValueError saying what is wrong."""
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise ValueError(f"radius must be in (0, {MAX_RADIUS_M:.0f}] metres, got {radius_m}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return Point(lat, lon)


def rated_at_most(rating: int | None, max_rating: int | None) -> bool:
    return max_rating is None or (rating is not None and rating <= max_rating)


def nearest(candidates: Iterable[tuple[str, Point, T]], center: Point, radius_m: float,
            limit: int) -> list[tuple[T, float]]:
    """The `limit` candidates (entity, point, payload) nearest `center` within `radius_m`; ties by entity."""
    found = [(haversine_m(center, point), entity, payload) for entity, point, payload in candidates]
    kept = sorted((item for item in found if item[0] <= radius_m), key=lambda item: (item[0], item[1]))
    return [(payload, distance) for distance, _, payload in kept[:limit]]


def check_dataset(view: CurrentView, record: Record) -> None:
    if record.dataset != view.dataset:
        raise ValueError(f"a view of {view.dataset!r} cannot hold a record of {record.dataset!r}")


def steps(change: Change) -> list[Step]:
    """What one change does to the view: remove the record it had, show the record it has.

    An update that moves a record to another entity (its establishment key changed) removes it from the old one.
    """
    before, after = change.before, change.after
    if change.op is Op.NOTICE:  # about the dataset (a source incident on `changes`): no record to show
        return []
    if change.op is Op.REMOVED or after is None:
        return [] if before is None else [Step(REMOVE, before)]
    if before is not None and before.entity != after.entity:
        return [Step(REMOVE, before), Step(UPSERT, after)]
    return [Step(UPSERT, after)]
