"""streams.view: the shared rules (rank, nearest, query checks) and the SQLite view against brute force."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.diff import diff_one, removal
from core.geo import Point
from core.model import Record
from core.profiles import ALIMCONFIANCE, GENERIC
from streams.view import (
    GEO_MAX_LAT,
    REMOVE,
    UPSERT,
    Step,
    nearest,
    placeable,
    query_center,
    rank,
    rated_at_most,
    steps,
)
from streams.view_sqlite import SqliteCurrentView
from tests.contract.places import DATASET, PARIS, brute_near, inspection, latest


@pytest.mark.parametrize(("older", "newer"), [
    (("2024-01-01", "9"), ("2025-01-01", "1")),  # the date decides first
    (("2025-01-01", "1"), ("2025-01-01", "2")),  # then the key
    (("2025-01-01", "zz"), ("2025-01-01T08:00", "a")),  # a longer date is later, whatever the key
    (("", "b"), ("2025-01-01", "a")),  # an undated record is older than any dated one
])
def test_rank_orders_by_date_then_key(older: tuple[str, str], newer: tuple[str, str]) -> None:
    def ranked(when: str, key: str) -> str:
        return rank(Record(DATASET, key, {"date_inspection": when}, "f"), ALIMCONFIANCE)
    assert ranked(*older) < ranked(*newer)
    assert ranked(*older).encode() < ranked(*newer).encode()


def test_rank_of_a_dataset_without_order_is_its_key() -> None:
    assert rank(Record("generic", "k2", {}, "f"), GENERIC) > rank(Record("generic", "k1", {}, "f"), GENERIC)


def test_nearest_filters_sorts_and_breaks_ties_by_entity() -> None:
    east, west = Point(48.8566, 2.3622), Point(48.8566, 2.3422)  # both ~732 m from PARIS
    candidates = [("b", east, "B"), ("a", west, "A"), ("c", PARIS, "C"), ("far", Point(48.95, 2.35), "F")]
    found = nearest(candidates, PARIS, 1000.0, limit=10)
    assert [payload for payload, _ in found] == ["C", "A", "B"]
    assert found[0][1] == 0.0
    assert found[1][1] == pytest.approx(found[2][1])
    assert nearest(candidates, PARIS, 1000.0, limit=1) == [("C", 0.0)]


@pytest.mark.parametrize(("radius", "limit"), [(0.0, 1), (-1.0, 1), (1_000_000.5, 1), (10.0, 0)])
def test_query_checks(radius: float, limit: int) -> None:
    with pytest.raises(ValueError, match=r"radius|limit"):
        query_center(48.0, 2.0, radius, limit)


def test_query_center_checks_coordinates() -> None:
    with pytest.raises(ValueError, match="out of range"):
        query_center(91.0, 2.0, 10.0, 1)
    assert query_center(48.0, 2.0, 1_000_000.0, 1) == Point(48.0, 2.0)


def test_placeable() -> None:
    assert placeable(inspection("1", "2025-01-01", 1, point=None)) is None
    assert placeable(inspection("1", "2025-01-01", 1, point=Point(GEO_MAX_LAT + 0.01, 0.0))) is None
    assert placeable(inspection("1", "2025-01-01", 1, point=Point(-GEO_MAX_LAT, 0.0))) == Point(-GEO_MAX_LAT, 0.0)


@pytest.mark.parametrize(("rating", "max_rating", "kept"), [
    (None, None, True), (4, None, True), (2, 2, True), (3, 2, False), (None, 4, False)])
def test_rated_at_most(rating: int | None, max_rating: int | None, kept: bool) -> None:
    assert rated_at_most(rating, max_rating) is kept


SIRETS = tuple(f"{12345678900000 + i}" for i in range(6))
inspections = st.builds(
    inspection,
    st.sampled_from(SIRETS),
    st.sampled_from(("2024-11-05", "2025-01-15", "2025-03-02")),
    st.sampled_from((1, 2, 3, 4, None)),
    point=st.none() | st.builds(Point, st.floats(48.84, 48.87), st.floats(2.33, 2.37)),
    number=st.sampled_from(("1", "2")),
)


@settings(max_examples=40, deadline=None)
@given(records=st.lists(inspections, max_size=25, unique_by=lambda r: r.key),
       center=st.builds(Point, st.floats(48.84, 48.87), st.floats(2.33, 2.37)),
       radius=st.floats(1.0, 3000.0), max_rating=st.sampled_from((None, 1, 2, 3)), limit=st.integers(1, 8))
def test_sqlite_view_equals_brute_force_whatever_the_order(records: list[Record], center: Point, radius: float,
                                                           max_rating: int | None, limit: int) -> None:
    async def scenario() -> None:
        view = await SqliteCurrentView.connect("memory://", dataset=DATASET)
        try:
            for record in records:
                await view.upsert(record)
            shown = latest(records)
            assert {e: await view.get(e) for e in shown} == shown
            found = await view.near(center.lat, center.lon, radius, max_rating=max_rating, limit=limit)
            expected = brute_near(shown, center, radius, max_rating=max_rating, limit=limit)
            assert [(r.key, d) for r, d in found] == expected
        finally:
            await view.aclose()
    asyncio.run(scenario())


def test_placed_record_near_its_own_point() -> None:
    async def scenario() -> None:
        view = await SqliteCurrentView.connect("memory://", dataset=DATASET)
        try:
            await view.upsert(inspection("1", "2025-01-01", 1))
            [(record, distance)] = await view.near(PARIS.lat, PARIS.lon, 1.0)
            assert (record.key, distance) == (inspection("1", "2025-01-01", 1).key, 0.0)
        finally:
            await view.aclose()
    asyncio.run(scenario())


def test_steps_of_each_change_kind() -> None:
    at = datetime(2025, 6, 30, tzinfo=UTC)
    first = inspection("1", "2025-01-01", 2)
    fixed = inspection("1", "2025-01-01", 3)
    moved = inspection("1", "2025-01-01", 2, address="3 rue Neuve")
    created, updated, relocated = (diff_one(before, after, at=at, version="v", profile=ALIMCONFIANCE)
                                   for before, after in ((None, first), (first, fixed), (first, moved)))
    assert created is not None
    assert updated is not None
    assert relocated is not None
    assert steps(created) == [Step(UPSERT, first)]
    assert steps(updated) == [Step(UPSERT, fixed)]
    assert steps(relocated) == [Step(REMOVE, first), Step(UPSERT, moved)]
    assert steps(removal(first, at=at, version="v", profile=ALIMCONFIANCE)) == [Step(REMOVE, first)]
