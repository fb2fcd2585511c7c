"""streams.view.CurrentView: one suite, every backend (SQLite memory://, SQLite file, Redis GEO)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.diff import diff_one, removal
from core.geo import Point, haversine_m
from core.model import Change, Kind, Record
from core.profiles import ALIMCONFIANCE
from streams.sqlite import Database
from streams.view import CurrentView
from streams.view_redis import RedisCurrentView
from streams.view_sqlite import SqliteCurrentView
from tests.contract.conftest import drop_namespace, unique
from tests.contract.places import DATASET, PARIS, inspection

MakeView = Callable[..., Awaitable[CurrentView]]
AT = datetime(2025, 6, 30, 8, 15, tzinfo=UTC)
BASTILLE = Point(48.8532, 2.3692)  # ~1.3 km east of PARIS
LOUVRE = Point(48.8606, 2.3376)  # ~1.2 km west-north-west
DEFENSE = Point(48.8920, 2.2360)  # ~9.3 km


def created(after: Record, version: str = "v1") -> Change:
    change = diff_one(None, after, at=AT, version=version, profile=ALIMCONFIANCE)
    assert change is not None
    return change


def updated(before: Record, after: Record) -> Change:
    change = diff_one(before, after, at=AT, version="v2", profile=ALIMCONFIANCE)
    assert change is not None
    return change


def removed(before: Record, *, floor: str | None = None) -> Change:
    return removal(before, at=AT, version="v3", profile=ALIMCONFIANCE, floor=floor)


@pytest.fixture(params=["sqlite-memory", "sqlite-file", pytest.param("redis", marks=pytest.mark.redis)])
async def make_view(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeView]:
    made: list[SqliteCurrentView | RedisCurrentView] = []
    namespace = unique("contract-view")
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    database = None if request.param == "redis" else await Database(
        "memory://" if request.param == "sqlite-memory" else f"sqlite:///{tmp_path / 'state.db'}").open()

    async def make(dataset: str = DATASET) -> CurrentView:
        view: SqliteCurrentView | RedisCurrentView
        if database is None:
            view = RedisCurrentView(url, dataset=dataset, namespace=namespace)
        else:
            view = await SqliteCurrentView(database, dataset=dataset).open()
        made.append(view)
        return view

    yield make
    for view in made:
        await view.aclose()
    if database is not None:
        await database.close()
    else:
        await drop_namespace(url, namespace)


@pytest.fixture
async def view(make_view: MakeView) -> CurrentView:
    return await make_view()


async def test_get_round_trips_the_record(view: CurrentView) -> None:
    record = inspection("11111111111111", "2025-03-01", 2, point=BASTILLE)
    assert await view.upsert(record) is True
    assert await view.get(record.entity) == record
    assert await view.get("nobody") is None


async def test_an_entity_shows_its_latest_inspection(view: CurrentView) -> None:
    old, new = (inspection("22222222222222", date, rating, number=n)
                for date, rating, n in (("2024-02-10", 4, "1"), ("2025-01-15", 1, "2")))
    assert await view.upsert(new) is True
    assert await view.upsert(old) is False  # older: ignored, whatever the arrival order
    assert await view.get(new.entity) == new
    assert [(r.key, r.rating) for r, _ in await view.near(PARIS.lat, PARIS.lon, 100)] == [(new.key, 1)]


async def test_a_new_version_of_the_shown_inspection_replaces_it(view: CurrentView) -> None:
    first = inspection("33333333333333", "2025-01-15", 2)
    corrected = inspection("33333333333333", "2025-01-15", 3, point=LOUVRE)
    await view.upsert(first)
    assert await view.upsert(corrected) is True
    assert await view.get(first.entity) == corrected
    assert await view.near(PARIS.lat, PARIS.lon, 100) == []
    assert [r for r, _ in await view.near(LOUVRE.lat, LOUVRE.lon, 100)] == [corrected]


async def test_same_day_inspections_tie_on_key_whatever_the_arrival_order(view: CurrentView) -> None:
    for siret, order in (("44444444444441", ("1", "2")), ("44444444444442", ("2", "1"))):
        for number in order:
            await view.upsert(inspection(siret, "2025-01-15", int(number), number=number))
        shown = await view.get(inspection(siret, "2025-01-15", 2).entity)
        assert shown is not None
        assert shown.key.startswith("2-")


async def test_removing_the_shown_inspection_removes_the_entity(view: CurrentView) -> None:
    old, new = inspection("55555555555555", "2024-02-10", 2, number="1"), inspection(
        "55555555555555", "2025-01-15", 1, number="2")
    await view.upsert(old)
    await view.upsert(new)
    assert await view.remove(old) is False  # not the one shown: nothing changes
    assert await view.get(new.entity) == new
    assert await view.remove(new) is True
    assert await view.get(new.entity) is None
    assert await view.near(PARIS.lat, PARIS.lon, 1000) == []
    assert await view.remove(new) is False


async def test_records_without_a_point_are_kept_but_not_near(view: CurrentView) -> None:
    nowhere = inspection("66666666666666", "2025-01-15", 1, point=None)
    polar = inspection("66666666666667", "2025-01-15", 1, point=Point(89.0, 10.0))
    assert await view.upsert(nowhere) is True
    assert await view.upsert(polar) is True
    assert await view.get(nowhere.entity) == nowhere
    assert await view.get(polar.entity) == polar
    assert await view.near(89.0, 10.0, 500_000) == []
    await view.upsert(inspection("66666666666666", "2025-05-01", 1, number="2"))
    assert len(await view.near(PARIS.lat, PARIS.lon, 10)) == 1


async def _three_places(view: CurrentView) -> dict[str, Record]:
    records = {
        "here": inspection("70000000000001", "2025-01-01", 1, point=PARIS),
        "bastille": inspection("70000000000002", "2025-01-02", 3, point=BASTILLE),
        "louvre": inspection("70000000000003", "2025-01-03", 2, point=LOUVRE),
        "unrated": inspection("70000000000004", "2025-01-04", None, point=Point(48.8570, 2.3530)),
        "defense": inspection("70000000000005", "2025-01-05", 1, point=DEFENSE),
    }
    for record in records.values():
        await view.upsert(record)
    return records


async def test_near_sorts_by_distance_within_the_radius(view: CurrentView) -> None:
    records = await _three_places(view)
    found = await view.near(PARIS.lat, PARIS.lon, 2000)
    assert [r.key for r, _ in found] == [records[k].key for k in ("here", "unrated", "louvre", "bastille")]
    for record, distance in found:
        assert record.point is not None
        assert distance == pytest.approx(haversine_m(PARIS, record.point), abs=1e-6)
    assert [r.key for r, _ in await view.near(PARIS.lat, PARIS.lon, 20_000, limit=2)] == [
        records["here"].key, records["unrated"].key]


async def test_max_rating_keeps_the_safe_places(view: CurrentView) -> None:
    records = await _three_places(view)
    safe = await view.near(PARIS.lat, PARIS.lon, 20_000, max_rating=2)
    assert [r.key for r, _ in safe] == [records[k].key for k in ("here", "louvre", "defense")]
    best = await view.near(PARIS.lat, PARIS.lon, 20_000, max_rating=1)
    assert [r.key for r, _ in best] == [records["here"].key, records["defense"].key]


async def test_a_downgrade_moves_the_entity_out_of_safe_places(view: CurrentView) -> None:
    await view.upsert(inspection("80000000000001", "2025-01-01", 1, number="1"))
    await view.upsert(inspection("80000000000001", "2025-06-01", 4, number="2"))
    assert await view.near(PARIS.lat, PARIS.lon, 100, max_rating=3) == []
    assert [r.rating for r, _ in await view.near(PARIS.lat, PARIS.lon, 100)] == [4]


async def test_apply_folds_the_diff(view: CurrentView) -> None:
    first = inspection("90000000000001", "2024-03-01", 2, number="1")
    second = inspection("90000000000001", "2025-03-01", 4, number="2")
    fixed = inspection("90000000000001", "2025-03-01", 3, number="2")
    other = inspection("90000000000002", "2025-02-01", 1, point=BASTILLE)
    assert await view.apply([created(first), created(second), created(other)]) == 3
    assert await view.apply([updated(second, fixed)]) == 1
    assert await view.get(fixed.entity) == fixed
    aged = removed(first, floor="2024-06-01")
    assert aged.kinds == (Kind.AGED_OUT,)
    assert await view.apply([aged]) == 0  # not the inspection shown
    assert await view.apply([removed(fixed)]) == 1
    assert await view.get(fixed.entity) is None  # the dataset still lists nothing newer: the place is gone
    assert [r.key for r, _ in await view.near(PARIS.lat, PARIS.lon, 5000)] == [other.key]


async def test_apply_skips_other_datasets_and_follows_moves(view: CurrentView) -> None:
    foreign = Record("other", "k1", {}, "f", PARIS, group="g1", rating=1)
    before = inspection("91000000000001", "2025-03-01", 2)
    moved = inspection("91000000000001", "2025-03-01", 2, address="3 rue Neuve")  # same key, another entity
    assert before.key == moved.key
    assert before.entity != moved.entity
    assert await view.apply([created(foreign), created(before)]) == 1
    assert await view.apply([updated(before, moved)]) == 1
    assert await view.get(before.entity) is None
    assert await view.get(moved.entity) == moved


async def test_views_of_two_datasets_are_isolated(make_view: MakeView) -> None:
    mine, theirs = await make_view(), await make_view("other")
    foreign = Record("other", "k1", {}, "f", PARIS, group="g1", rating=1)
    await theirs.upsert(foreign)
    assert await mine.near(PARIS.lat, PARIS.lon, 1000) == []
    assert await mine.get("g1") is None
    assert [r for r, _ in await theirs.near(PARIS.lat, PARIS.lon, 1000)] == [foreign]
    with pytest.raises(ValueError, match="cannot hold"):
        await mine.upsert(foreign)


@pytest.mark.parametrize(("radius", "limit"), [(0, 10), (-5, 10), (1_000_001, 10), (100, 0)])
async def test_near_rejects_bad_queries(view: CurrentView, radius: float, limit: int) -> None:
    with pytest.raises(ValueError, match=r"radius|limit"):
        await view.near(PARIS.lat, PARIS.lon, radius, limit=limit)
