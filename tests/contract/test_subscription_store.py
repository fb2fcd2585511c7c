"""core.ports.SubscriptionStore: one suite, every backend (SQLite file, SQLite memory://, Redis).

`make(name)` gives a store; two names give two isolated stores (two files, two namespaces).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from core.geo import AdminArea, Area, BBox, Circle, Everywhere, Point, Polygon
from core.model import Filter, Kind, Subscription
from core.ports import SubscriptionStore
from subscriptions.redis import RedisSubscriptionStore
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.contract.conftest import drop_namespace, unique

Make = Callable[[str], Awaitable[SubscriptionStore]]

SQUARE = ((2.30, 48.80), (2.40, 48.80), (2.40, 48.90), (2.30, 48.90), (2.30, 48.80))
HOLE = ((2.34, 48.84), (2.36, 48.84), (2.36, 48.86), (2.34, 48.86), (2.34, 48.84))
ISLAND = ((4.80, 45.70), (4.90, 45.70), (4.90, 45.80), (4.80, 45.70))
AREAS: dict[str, Area] = {
    "circle": Circle(Point(48.8566, 2.3522), 1500.0),
    "bbox": BBox(48.80, 2.25, 48.92, 2.42),
    "polygon": Polygon(((SQUARE, HOLE),)),
    "multipolygon": Polygon(((SQUARE,), (ISLAND,))),
    "commune": AdminArea("commune", "75056"),
    "postcode": AdminArea("postcode", "75011"),
    "departement": AdminArea("departement", "2A"),
    "region": AdminArea("region", "11"),
    "everywhere": Everywhere(),
}
FILTERS = {
    "any": Filter(),
    "datasets": Filter(datasets=frozenset({"alimconfiance", "other"})),
    "kinds": Filter(kinds=frozenset({Kind.DOWNGRADE, Kind.NEW_INSPECTION})),
    "urgent": Filter(datasets=frozenset({"alimconfiance"}), kinds=frozenset({Kind.DOWNGRADE}), min_rating=4),
}


def sub(sid: str, *, area: str = "everywhere", label: str = "", secret: str | None = None,
        destination: str = "webhook+https://partner.example/hooks/vigie") -> Subscription:
    return Subscription(sid, AREAS[area], destination, Filter(), "fr", secret, label)


def _redis(name: str, url: str, namespaces: list[str]) -> RedisSubscriptionStore:
    namespace = unique(f"contract-{name}")
    namespaces.append(namespace)
    return RedisSubscriptionStore(url, namespace=namespace)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Make]:
    stores: list[SqliteSubscriptionStore | RedisSubscriptionStore] = []
    namespaces: list[str] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""

    async def factory(name: str) -> SubscriptionStore:
        store: SqliteSubscriptionStore | RedisSubscriptionStore
        if request.param == "redis":
            store = _redis(name, url, namespaces)
        else:
            store = SqliteSubscriptionStore(
                f"sqlite:///{tmp_path / name}.db" if request.param == "sqlite-file" else "memory://")
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.aclose()
    for namespace in namespaces:
        await drop_namespace(url, namespace)


@pytest.fixture
async def store(make: Make) -> SubscriptionStore:
    return await make("main")


@pytest.mark.parametrize("area", sorted(AREAS))
async def test_round_trip_keeps_every_area(store: SubscriptionStore, area: str) -> None:
    subscription = sub(f"s-{area}", area=area, label=f"watch {area}")
    await store.put(subscription)
    assert await store.get(subscription.id) == subscription


@pytest.mark.parametrize("name", sorted(FILTERS))
async def test_round_trip_keeps_filters_lang_and_label(store: SubscriptionStore, name: str) -> None:
    subscription = Subscription(f"f-{name}", AREAS["circle"], "slack://C0123ABCD", FILTERS[name], "en",
                                None, "Équipe « cantine » — 11e")
    await store.put(subscription)
    assert await store.get(subscription.id) == subscription


async def test_secret_is_kept(store: SubscriptionStore) -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    await store.put(sub("with-secret", secret=secret))
    found = await store.get("with-secret")
    assert found is not None
    assert found.secret == secret


async def test_put_overwrites_by_id(store: SubscriptionStore) -> None:
    await store.put(sub("s1", area="circle", label="before"))
    await store.put(sub("s1", area="commune", label="after", destination="slack://C0123ABCD"))
    assert await store.get("s1") == sub("s1", area="commune", label="after", destination="slack://C0123ABCD")
    assert [s.id for s in await store.all()] == ["s1"]


async def test_paused_and_disabled_reason_are_kept(store: SubscriptionStore) -> None:
    await store.put(replace(sub("p"), paused=True))
    await store.put(replace(sub("d"), disabled_reason="slack channel_not_found: the channel does not exist"))
    assert [(s.id, s.paused, s.disabled_reason) for s in await store.all()] == [
        ("p", True, None), ("d", False, "slack channel_not_found: the channel does not exist")]
    assert await store.get("p") == replace(sub("p"), paused=True)


async def test_delete_returns_true_then_false(store: SubscriptionStore) -> None:
    await store.put(sub("gone"))
    assert await store.delete("gone") is True
    assert await store.get("gone") is None
    assert await store.delete("gone") is False
    assert await store.all() == []


async def test_unknown_id(store: SubscriptionStore) -> None:
    assert await store.get("nobody") is None
    assert await store.delete("nobody") is False


async def test_all_of_an_empty_store(store: SubscriptionStore) -> None:
    assert await store.all() == []


async def test_all_lists_in_creation_order(store: SubscriptionStore) -> None:
    ids = ["m", "z", "a", "k", "b"]
    for sid in ids:
        await store.put(sub(sid, label=sid))
    assert [s.id for s in await store.all()] == ids


async def test_overwrite_keeps_place_and_recreate_goes_last(store: SubscriptionStore) -> None:
    for sid in ("c", "b", "a"):
        await store.put(sub(sid))
    await store.put(sub("b", label="renamed"))
    await store.delete("c")
    await store.put(sub("c", label="again"))
    assert [(s.id, s.label) for s in await store.all()] == [("b", "renamed"), ("a", ""), ("c", "again")]


async def test_all_returns_full_subscriptions(store: SubscriptionStore) -> None:
    expected = [sub(f"id-{i:03d}", area=area, label=area) for i, area in enumerate(sorted(AREAS))]
    for subscription in expected:
        await store.put(subscription)
    assert sorted(await store.all(), key=lambda s: s.id) == expected


async def test_stores_are_isolated(make: Make) -> None:
    one, two = await make("one"), await make("two")
    await one.put(sub("shared-id", label="one"))
    await two.put(sub("shared-id", label="two"))
    await two.put(sub("only-two"))
    assert await one.delete("only-two") is False
    assert [(s.id, s.label) for s in await one.all()] == [("shared-id", "one")]
    assert {s.id for s in await two.all()} == {"shared-id", "only-two"}
