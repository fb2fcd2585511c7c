"""The current-state view, SQLite and Redis, fed by core.diff over two Paris-like snapshots, against brute force."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from core.diff import diff
from core.geo import EARTH_RADIUS_M, Point
from core.model import Change, Record
from core.profiles import ALIMCONFIANCE
from streams.view import UPSERT, CurrentView, steps
from streams.view_redis import RedisCurrentView
from streams.view_sqlite import SqliteCurrentView
from tests.contract.conftest import drop_namespace, unique
from tests.contract.places import DATASET, PARIS, Place, brute_near, inspection, inspections, latest, places

AT = datetime(2025, 9, 30, 6, 0, tzinfo=UTC)
RADII = (150.0, 500.0, 1500.0, 4000.0, 12000.0)
RATINGS = (None, 1, 2, 3)
LIMITS = (3, 20, 10_000)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def view(request: pytest.FixtureRequest) -> AsyncIterator[CurrentView]:
    if request.param == "sqlite":
        sqlite_view = await SqliteCurrentView.connect("memory://", dataset=DATASET)
        yield sqlite_view
        await sqlite_view.aclose()
        return
    url, namespace = request.getfixturevalue("redis_url"), unique("test-view")
    redis_view = RedisCurrentView(url, dataset=DATASET, namespace=namespace)
    yield redis_view
    await redis_view.aclose()
    await drop_namespace(url, namespace)


def day(rng: random.Random, start: date, span_days: int) -> str:
    return (start + timedelta(days=rng.randrange(span_days))).isoformat()


def first_snapshot(establishments: list[Place], rng: random.Random) -> list[Record]:
    records = []
    for place in establishments:
        dates = sorted({day(rng, date(2024, 7, 1), 360) for _ in range(rng.randint(1, 3))})
        records += inspections(place, dates, rng)
    return records


def next_snapshot(previous: list[Record], establishments: list[Place], rng: random.Random) -> list[Record]:
    """A week later: closures, new inspections, corrections, and the rolling window dropping old ones."""
    closed = {p.siret for p in establishments if rng.random() < 0.08}
    kept = [r for r in previous if r.fields["siret"] not in closed and r.fields["date_inspection"] >= "2024-10-01"]
    shown = latest(kept)
    corrected = {r.key for r in shown.values() if rng.random() < 0.05}
    kept = [inspection(r.fields["siret"], r.fields["date_inspection"], 4, point=r.point, name=r.fields["name"],
                       number=r.fields["numero_inspection"].split("-")[0], address=r.fields["address"])
            if r.key in corrected else r for r in kept]
    for place in establishments:
        if place.siret not in closed and rng.random() < 0.3:
            kept += inspections(place, [day(rng, date(2025, 7, 1), 90)], rng)[:1]
    return kept


def queries(rng: random.Random, count: int) -> list[tuple[Point, float, int | None, int]]:
    return [(Point(PARIS.lat + rng.uniform(-0.06, 0.06), PARIS.lon + rng.uniform(-0.09, 0.09)),
             rng.choice(RADII), rng.choice(RATINGS), rng.choice(LIMITS)) for _ in range(count)]


async def one_by_one(changes: list[Change]) -> int:
    """How many changes alter a view when folded one call at a time: the reference for `apply`'s count."""
    reference = await SqliteCurrentView.connect("memory://", dataset=DATASET)
    applied = 0
    try:
        for change in changes:
            done = [await (reference.upsert if action == UPSERT else reference.remove)(record)
                    for action, record in steps(change)]
            applied += any(done)
    finally:
        await reference.aclose()
    return applied


async def assert_matches(view: CurrentView, snapshot: list[Record], rng: random.Random) -> None:
    shown = latest(snapshot)
    for entity, record in shown.items():
        assert await view.get(entity) == record
    for center, radius, max_rating, limit in queries(rng, 40):
        found = await view.near(center.lat, center.lon, radius, max_rating=max_rating, limit=limit)
        expected = brute_near(shown, center, radius, max_rating=max_rating, limit=limit)
        assert [r.key for r, _ in found] == [key for key, _ in expected]
        assert [d for _, d in found] == pytest.approx([d for _, d in expected], abs=1e-6)


async def test_view_follows_two_snapshots_like_brute_force(view: CurrentView) -> None:
    rng = random.Random(20250630)
    establishments = places(400, rng)
    snapshot = first_snapshot(establishments, rng)
    changes = first = diff({}, snapshot, complete=True, at=AT, version="w1", profile=ALIMCONFIANCE)
    assert await view.apply(changes) == await one_by_one(changes)
    await assert_matches(view, snapshot, rng)

    later = next_snapshot(snapshot, establishments, rng)
    changes = diff({r.key: r for r in snapshot}, later, complete=True, at=AT, version="w2", profile=ALIMCONFIANCE)
    assert {c.op for c in changes} == {"created", "updated", "removed"}
    assert await view.apply(changes) == await one_by_one(first + changes) - await one_by_one(first)
    await assert_matches(view, later, rng)
    gone = latest(snapshot).keys() - latest(later).keys()
    assert gone
    for entity in gone:
        assert await view.get(entity) is None


def on_circle(center: Point, radius_m: float, bearing: float) -> Point:
    d = radius_m / EARTH_RADIUS_M
    lat1, lon1 = math.radians(center.lat), math.radians(center.lon)
    lat2 = math.asin(math.sin(lat1) * math.cos(d) + math.cos(lat1) * math.sin(d) * math.cos(bearing))
    east = math.sin(bearing) * math.sin(d) * math.cos(lat1)
    lon2 = lon1 + math.atan2(east, math.cos(d) - math.sin(lat1) * math.sin(lat2))
    return Point(math.degrees(lat2), math.degrees(lon2))


async def test_near_ties_at_the_limit_match_brute_force(view: CurrentView) -> None:
    """Sixty places on one 500 m circle: which ten come first is decided by exact distance, not geohash rounding."""
    ring = [inspection(f"{50_000_000_000_000 + i}", "2025-05-01", 1 + i % 2,
                       point=on_circle(PARIS, 500.0, 2 * math.pi * i / 60)) for i in range(60)]
    for record in ring:
        await view.upsert(record)
    shown = {r.entity: r for r in ring}
    for max_rating in (None, 1):
        found = await view.near(PARIS.lat, PARIS.lon, 600.0, max_rating=max_rating, limit=10)
        expected = brute_near(shown, PARIS, 600.0, max_rating=max_rating, limit=10)
        assert [r.key for r, _ in found] == [key for key, _ in expected]
    assert await view.near(PARIS.lat, PARIS.lon, 499.0) == []
