"""The Telegram bot and the tg:// channel over real HTTP against the local Bot API stand-in.

One whole conversation, as a user would have it: /start → a shared location → the 5 best-rated places from a
current-state view holding real Alim'Confiance rows → "1 km" → the subscription stored with a rounded point →
an alert delivered to the chat → the user blocks the bot → the subscription is disabled → /start again →
/forget. Then the webhook mode, which refuses a wrong secret token.
"""

from __future__ import annotations

import asyncio
import csv
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.diff import diff_one
from core.errors import DeliveryError
from core.geo import Circle, Point, haversine_m
from core.index import SubscriptionIndex
from core.model import Delivery, Record, Subscription
from core.ports import CurrentView, RawSnapshot, SubscriptionStore
from core.profiles import ALIMCONFIANCE
from notifiers import Channels
from notifiers.telegram import BLOCKED
from producers.datasets.alimconfiance import AlimConfianceAdapter
from runtime.demo.telegram_api import FakeTelegramApi, FakeUser, Sent
from runtime.settings import Settings
from runtime.telegram import disabler, host_bot
from streams.view_redis import RedisCurrentView
from streams.view_sqlite import SqliteCurrentView
from subscriptions.redis import RedisSubscriptionStore
from subscriptions.sqlite import SqliteSubscriptionStore
from tests import services
from tests.contract.conftest import drop_namespace, unique

ROWS = Path(__file__).resolve().parents[2] / "runtime" / "demo_data" / "restaurants-2018-2019.csv"
HOTEL_DE_VILLE = Point(48.85661234, 2.35221987)  # as a phone shares it: more digits than Vigie keeps
ROUNDED = Point(48.857, 2.352)
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def real_records_near(center: Point, radius_m: float) -> list[Record]:
    """Real 2018-2019 inspections (the shared data set) within `radius_m` of `center`."""
    with ROWS.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file, delimiter=";"))
    snapshot = AlimConfianceAdapter().to_snapshot(RawSnapshot("restaurants-2018-2019", rows, True, "v1"))
    return [r for r in snapshot.records if r.point is not None and haversine_m(center, r.point) <= radius_m]


def expected_safest(records: list[Record], center: Point, radius_m: float) -> list[str]:
    """Brute force: each establishment's latest inspection, best rating then nearest, five names."""
    latest: dict[str, Record] = {}
    for r in records:
        shown = latest.get(r.entity)
        if shown is None or (ALIMCONFIANCE.order(r), r.key) >= (ALIMCONFIANCE.order(shown), shown.key):
            latest[r.entity] = r
    assert all(r.point is not None for r in latest.values())
    ranked = sorted((r for r in latest.values() if r.rating is not None and r.point is not None
                     and haversine_m(center, r.point) <= radius_m),
                    key=lambda r: (r.rating, haversine_m(center, r.point) if r.point else 0.0, r.entity))
    return [str(r.fields["name"]) for r in ranked[:5]]


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramApi]:
    server = FakeTelegramApi()
    await server.start()
    yield server
    await server.close()


@pytest.fixture(scope="module")
def paris() -> list[Record]:
    return real_records_near(ROUNDED, 3000)


class Published:
    """A SubscriptionPublisher keeping what it was given, in order (the topic's messages)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Subscription | None]] = []

    async def publish(self, subscription_id: str, subscription: Subscription | None) -> None:
        self.sent.append((subscription_id, subscription))

    async def aclose(self) -> None:
        return None


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The embedded runtime's stores, or the distributed runtime's (Redis, writes published)."""
    return str(request.param)


@pytest.fixture
async def view(backend: str, paris: list[Record]) -> AsyncIterator[CurrentView]:
    namespace = unique("tg-view")
    current: CurrentView = await SqliteCurrentView.connect("memory://", dataset="alimconfiance") \
        if backend == "sqlite" else RedisCurrentView(services.redis_url(), dataset="alimconfiance",
                                                     namespace=namespace)
    for record in paris:
        await current.upsert(record)
    yield current
    await current.aclose()
    if backend == "redis":
        await drop_namespace(services.redis_url(), namespace)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
async def store(backend: str, published: Published) -> AsyncIterator[SubscriptionStore]:
    namespace = unique("tg-subs")
    subscriptions: SubscriptionStore = SqliteSubscriptionStore("memory://") if backend == "sqlite" else \
        RedisSubscriptionStore(services.redis_url(), publisher=published, namespace=namespace)
    yield subscriptions
    await subscriptions.aclose()
    if backend == "redis":
        await drop_namespace(services.redis_url(), namespace)


def settings_for(api: FakeTelegramApi, **extra: Any) -> Settings:
    return Settings(telegram_bot_token=api.token, telegram_api_url=api.base_url, telegram_poll_timeout=5, **extra)


@pytest.fixture
async def bot(api: FakeTelegramApi, store: SubscriptionStore,
              view: CurrentView) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(host_bot(settings_for(api), store, view, stop))
    yield task
    stop.set()
    await asyncio.wait_for(task, 30)


async def reply(api: FakeTelegramApi, user: FakeUser, text: str) -> Sent:
    seen = len(api.to(user.id))
    await api.say(user, text)
    return await api.wait_for_message(user.id, seen)


def places_in(message: Sent) -> list[str]:
    """The place names of the bot's answer to a location (`1. NAME` lines)."""
    return [line.split(". ", 1)[1] for line in message.text.splitlines() if line[:2] in {f"{i}." for i in range(6)}]


@pytest.mark.usefixtures("bot")
async def test_a_whole_conversation(api: FakeTelegramApi, store: SubscriptionStore, view: CurrentView,
                                    paris: list[Record], published: Published) -> None:
    camille = FakeUser(4242, "Camille", "fr")
    welcome = await reply(api, camille, "/start")
    assert "Partagez votre position" in welcome.text

    seen = len(api.to(camille.id))
    await api.share_location(camille, HOTEL_DE_VILLE.lat, HOTEL_DE_VILLE.lon)
    await api.wait_for(lambda a: len(a.to(camille.id)) >= seen + 2, "the places and the buttons")
    places, buttons = api.to(camille.id)[seen:seen + 2]
    assert places_in(places) == expected_safest(paris, ROUNDED, 1000)
    assert "Très satisfaisant" in places.text
    assert "contrôle du 20" in places.text
    assert buttons.buttons() == [("500 m", "c:48.857:2.352:500"), ("1 km", "c:48.857:2.352:1000"),
                                 ("2 km", "c:48.857:2.352:2000")]
    assert "48.8566" not in str(api.requests)  # the raw point never comes back from the bot

    seen = len(api.to(camille.id))
    await api.tap(camille, buttons, "c:48.857:2.352:1000")
    confirmation = await api.wait_for_message(camille.id, seen)
    assert "Alerte créée" in confirmation.text
    assert api.answered
    [subscription] = await store.all()
    assert subscription.area == Circle(ROUNDED, 1000)
    assert (subscription.destination, subscription.lang, subscription.active) == ("tg://4242", "fr", True)

    await alert_then_block(api, camille, store, view)

    api.blocked.discard(camille.id)  # the user unblocks the bot and starts again
    seen = len(api.to(camille.id))
    await api.say(camille, "/start")
    back = await api.wait_for_message(camille.id, seen + 1)
    assert "de nouveau actives" in back.text
    assert (await store.all())[0].active

    assert "⏸ 1 alerte" in (await reply(api, camille, "/stop")).text
    assert (await store.all())[0].paused
    assert "en pause" in (await reply(api, camille, "/list")).text
    assert "1 alerte(s) supprimée(s)" in (await reply(api, camille, "/forget")).text
    assert await store.all() == []
    if isinstance(store, RedisSubscriptionStore):  # every write reached the topic, as the API's do
        states = [(sid, None if sub is None else (sub.paused, sub.disabled_reason)) for sid, sub in published.sent]
        assert states == [(subscription.id, state) for state in
                          [(False, None), (False, BLOCKED), (False, None), (True, None), None]]


async def alert_then_block(api: FakeTelegramApi, user: FakeUser, store: SubscriptionStore,
                           view: CurrentView) -> None:
    """A real place within the circle is downgraded: the alert reaches the chat; once blocked, the
    subscription is disabled and matches nothing more."""
    [(place, _)] = await view.near(ROUNDED.lat, ROUNDED.lon, 1000, max_rating=1, limit=1)
    worse = Record(place.dataset, place.key, {**place.fields, "rating_label": "A corriger de manière urgente"},
                   "fp-worse", place.point, place.admin, place.group, 4)
    change = diff_one(place, worse, at=AT, version="v2", profile=ALIMCONFIANCE)
    assert change is not None
    [subscription] = SubscriptionIndex(await store.all()).match(change)
    channels = Channels(telegram_token=api.token, telegram_base_url=api.base_url, timeout=5,
                        on_refused=disabler(store))
    try:
        seen = len(api.to(user.id))
        await channels.send(Delivery.of(change, subscription))
        alert = await api.wait_for_message(user.id, seen)
        assert str(place.fields["name"]) in alert.text
        assert "A corriger de manière urgente" in alert.text
        assert "du point suivi" in alert.text
        assert "Fiche officielle" in alert.text
        api.block(user.id)
        with pytest.raises(DeliveryError) as refused:
            await channels.send(Delivery.of(change, subscription))
        assert not refused.value.retriable
    finally:
        await channels.aclose()
    [disabled] = await store.all()
    assert disabled.disabled_reason == BLOCKED
    assert SubscriptionIndex(await store.all()).match(change) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_webhook_mode_refuses_a_wrong_secret_token(api: FakeTelegramApi, store: SubscriptionStore,
                                                         view: CurrentView) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    settings = settings_for(api, telegram_mode="webhook", telegram_webhook_url=url, telegram_webhook_port=port,
                            telegram_webhook_secret="s3cret-Token_42")
    stop = asyncio.Event()
    task = asyncio.create_task(host_bot(settings, store, view, stop))
    try:
        await api.wait_for(lambda a: bool(a.webhook.get("url")), "the webhook registered with setWebhook")
        assert api.webhook == {"url": url, "secret_token": "s3cret-Token_42"}
        sam = FakeUser(77, "Sam", "en-GB")
        welcome = await reply(api, sam, "/start")  # pushed by the stand-in with the right secret
        assert "Share your location" in welcome.text
        forged = {"update_id": 999, "message": {"message_id": 1, "date": 0, "text": "/forget",
                                                "chat": sam.chat(), "from": sam.to_json()}}
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_41"}):
                async with session.post(url, json=forged, headers=headers) as response:
                    assert response.status == 403
        await reply(api, sam, "/list")  # handled in order: had the forged /forget run, its answer came first
        assert [m.text.split(".")[0] for m in api.to(sam.id)][1] == "You have no alert"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.usefixtures("bot")
async def test_digest_and_quiet_hours_from_the_chat(api: FakeTelegramApi, store: SubscriptionStore) -> None:
    lou = FakeUser(5151, "Lou", "fr")
    assert "aucune alerte" in (await reply(api, lou, "/digest 6h")).text
    offer = await reply(api, lou, "/near 75004")
    seen = len(api.to(lou.id))
    await api.tap(lou, offer, offer.buttons()[0][1])
    assert "Alerte créée" in (await api.wait_for_message(lou.id, seen)).text

    assert "toutes les 6 h" in (await reply(api, lou, "/digest 6h")).text
    assert "22:00-07:00 (Europe/Paris)" in (await reply(api, lou, "/quiet 22h00-7h00")).text
    [sub] = await store.all()
    assert (sub.digest_hours, sub.quiet_hours) == (6, "22:00-07:00")
    listed = (await reply(api, lou, "/list")).text
    assert "code postal 75004 — active · groupées toutes les 6 h · calme 22:00-07:00" in listed

    for bad, answer in (("/digest 30h", "de 1 à 24"), ("/digest", "de 1 à 24"), ("/quiet 25:00-07:00", "plage"),
                        ("/quiet", "plage")):
        assert answer in (await reply(api, lou, bad)).text
    assert "une par une" in (await reply(api, lou, "/digest off")).text
    assert "Plus d'heures calmes" in (await reply(api, lou, "/quiet off")).text
    [sub] = await store.all()
    assert (sub.digest_hours, sub.quiet_hours, sub.active) == (0, "", True)
    assert "calme" not in (await reply(api, lou, "/list")).text
    await reply(api, lou, "/digest 3h")
    offer = await reply(api, lou, "/near 75011")  # a later alert follows the chat's settings
    seen = len(api.to(lou.id))
    await api.tap(lou, offer, offer.buttons()[0][1])
    await api.wait_for_message(lou.id, seen)
    assert sorted((s.digest_hours, s.quiet_hours) for s in await store.all()) == [(3, ""), (3, "")]
