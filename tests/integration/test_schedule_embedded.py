"""Digests and quiet hours in the embedded runtime: the outbox worker on SQLite, the Slack stand-in over HTTP, and a
fake clock (no sleeps). Held alerts are sent afterwards, a digest as one message whose alerts are each marked
delivered under their own idempotency key; an urgent one (rating 4) goes at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.model import Delivery, Subscription
from core.stamps import stamp
from notifiers import Channels
from notifiers.outbox_sqlite import SqliteOutbox
from notifiers.ratelimit import RateLimiter
from notifiers.worker import DrainResult, OutboxWorker
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi
from streams.sqlite import Commit, Database, SourceState, StateStore
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.integration.test_slack_alerts import alert

PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> datetime:
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=PARIS)


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    db: Database
    store: SqliteSubscriptionStore
    slack: FakeSlackApi
    worker: OutboxWorker
    clock: FakeClock

    async def queue(self, subscription: Subscription, detected: str, ratings: list[int]) -> list[Delivery]:
        """Alerts for `subscription` detected at `detected` (Paris time), queued in the outbox."""
        await self.store.put(subscription)
        made = []
        for n, rating in enumerate(ratings):
            base = alert(subscription.destination, n + 10 * len(ratings))
            after = replace(base.change.current, rating=rating)
            change = replace(base.change, id=f"{subscription.id}-{detected}-{n}", after=after, detected_at=at(detected))
            made.append(Delivery.of(change, subscription))
        health = SourceState("src", "v1", True, None, stamp(at(detected)), 0)
        await StateStore(self.db).commit(Commit("src", [], [], [], made, [], health), now=at(detected))
        return made

    async def drain_at(self, moment: str) -> DrainResult:
        self.clock.now = at(moment)
        return await self.worker.drain()

    async def statuses(self) -> dict[str, str]:
        rows = await self.db.call(lambda c: c.execute("SELECT key, status FROM outbox").fetchall())
        return dict(rows)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    db, store, slack = await Database(url).open(), SqliteSubscriptionStore(url), FakeSlackApi()
    await slack.start()
    channels = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=slack.base_url, timeout=5.0)
    clock = FakeClock(at("03-02 00:00"))
    worker = OutboxWorker(SqliteOutbox(db), channels, None, clock, limiter=RateLimiter({}), subscriptions=store)
    yield Rig(db, store, slack, worker, clock)
    await channels.aclose()
    await slack.close()
    await store.aclose()
    await db.close()


async def test_a_digest_is_one_message_at_its_time_and_urgent_goes_at_once(rig: Rig) -> None:
    sub = replace(alert("slack://C0VIGIE01").subscription, id="office", digest_hours=6, label="Bureau")
    queued = await rig.queue(sub, "03-02 09:10", [2, 3, 4, 2, 3])
    urgent, held = queued[2], [d for d in queued if d is not queued[2]]

    assert await rig.drain_at("03-02 09:10") == DrainResult(1, 0, 0, held=4)
    assert len(rig.slack.messages) == 1
    assert "A corriger de manière urgente" in str(rig.slack.messages[0].blocks)
    assert await rig.drain_at("03-02 11:59") == DrainResult(0, 0, 0)

    assert await rig.drain_at("03-02 12:00") == DrainResult(4, 0, 0)
    assert len(rig.slack.messages) == 2, "the digest is one message"
    digest = rig.slack.messages[1]
    assert digest.blocks[0]["text"]["text"] == "4 alertes Vigie"
    assert "*Bureau*" in str(digest.blocks)
    statuses = await rig.statuses()
    assert [statuses[d.key] for d in held] == ["delivered"] * 4, "each under its own key"
    assert statuses[urgent.key] == "delivered"


async def test_quiet_hours_hold_alerts_to_the_morning(rig: Rig) -> None:
    sub = replace(alert("slack://C0GENERAL").subscription, id="night", quiet_hours="22:00-07:00")
    await rig.queue(sub, "03-02 23:30", [2, 3])

    assert await rig.drain_at("03-02 23:30") == DrainResult(0, 0, 0, held=2)
    assert await rig.drain_at("03-03 06:59") == DrainResult(0, 0, 0)
    assert rig.slack.messages == []

    assert await rig.drain_at("03-03 07:00") == DrainResult(2, 0, 0)
    assert [m.channel for m in rig.slack.messages] == ["C0GENERAL"]


async def test_a_held_alert_does_not_hold_back_an_urgent_one(rig: Rig) -> None:
    sub = replace(alert("slack://C0GENERAL").subscription, id="night", quiet_hours="22:00-07:00")
    await rig.queue(sub, "03-02 23:00", [2])
    assert await rig.drain_at("03-02 23:00") == DrainResult(0, 0, 0, held=1)
    await rig.queue(sub, "03-02 23:30", [4])

    assert await rig.drain_at("03-02 23:30") == DrainResult(1, 0, 0)
    assert "A corriger de manière urgente" in str(rig.slack.messages[0].blocks)
