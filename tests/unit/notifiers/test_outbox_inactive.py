"""Embedded outbox: alerts queued for a subscription that is then paused, disabled or deleted are not sent.

The worker asks the subscription store (SQLite, as `vigie run` wires it) for each subscription's current status
before sending; what an inactive subscription had queued is marked `dropped` with the reason, and active
subscriptions are sent as they are stored now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from core.model import Delivery
from core.stamps import stamp
from notifiers.outbox_sqlite import SqliteOutbox
from notifiers.ratelimit import RateLimiter
from notifiers.worker import DrainResult, OutboxWorker
from streams.sqlite import Commit, Database, SourceState, StateStore
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.unit.notifiers.support import T0, Clock, delivery


@dataclass
class Recorder:
    """A channel that keeps what it was asked to send."""

    sent: list[Delivery] = field(default_factory=list)

    async def send(self, delivery: Delivery) -> None:
        self.sent.append(delivery)


@dataclass
class Rig:
    db: Database
    outbox: SqliteOutbox
    store: SqliteSubscriptionStore
    recorder: Recorder

    def worker(self) -> OutboxWorker:
        return OutboxWorker(self.outbox, self.recorder, None, Clock(), limiter=RateLimiter({}),
                            subscriptions=self.store)

    async def queue(self, *deliveries: Delivery) -> None:
        for d in deliveries:
            await self.store.put(d.subscription)
        health = SourceState("src", "v1", True, None, stamp(T0), 0)
        await StateStore(self.db).commit(Commit("src", [], [], [], deliveries, [], health), now=T0)

    async def statuses(self) -> dict[str, tuple[str, str | None]]:
        rows = await self.db.call(lambda c: c.execute("SELECT key, status, last_error FROM outbox").fetchall())
        return {key: (status, reason) for key, status, reason in rows}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = await Database(f"sqlite:///{tmp_path / 'state.db'}").open()
    store = SqliteSubscriptionStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield Rig(db, SqliteOutbox(db), store, Recorder())
    await store.aclose()
    await db.close()


async def test_queued_alerts_of_inactive_subscriptions_are_dropped(rig: Rig) -> None:
    kept, paused, disabled, deleted = (delivery("console://", sub_id=f"sub-{name}", key=f"insp-{name}")
                                       for name in ("kept", "paused", "disabled", "deleted"))
    await rig.queue(kept, paused, disabled, deleted)
    await rig.store.put(replace(paused.subscription, paused=True))
    await rig.store.put(replace(disabled.subscription, disabled_reason="slack channel_not_found"))
    await rig.store.delete(deleted.subscription.id)

    assert await rig.worker().drain() == DrainResult(1, 0, 0, dropped=3)

    assert [d.key for d in rig.recorder.sent] == [kept.key]
    assert await rig.statuses() == {
        kept.key: ("delivered", None), paused.key: ("dropped", "subscription paused"),
        disabled.key: ("dropped", "subscription disabled: slack channel_not_found"),
        deleted.key: ("dropped", "subscription deleted"),
    }
    assert await rig.worker().drain() == DrainResult(0, 0, 0), "dropped is final"


async def test_the_subscription_is_sent_as_stored_now(rig: Rig) -> None:
    queued = delivery("console://", lang="fr")
    await rig.queue(queued)
    await rig.store.put(replace(queued.subscription, lang="en", label="Office"))

    await rig.worker().drain()

    [sent] = rig.recorder.sent
    assert (sent.key, sent.subscription.lang, sent.subscription.label) == (queued.key, "en", "Office")


async def test_resumed_before_the_drain_is_sent(rig: Rig) -> None:
    queued = delivery("console://")
    await rig.queue(queued)
    await rig.store.put(replace(queued.subscription, paused=True))
    await rig.store.put(queued.subscription)  # resumed

    assert await rig.worker().drain() == DrainResult(1, 0, 0)
