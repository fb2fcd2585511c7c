"""Quiet hours and digests in the Kafka notifier, on a real broker and Redis, with a fake clock (no waiting for the
night to end): held alerts wait in Redis, the urgent one goes at once, and at the end of the quiet hours the held
ones go out as one merged Slack message, each marked done under its own idempotency key."""

# ruff: noqa: F811 - fixtures are imported from test_kafka_notifier_merge.py, so test arguments share their names

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from core.model import Delivery
from notifiers import Channels
from notifiers.guard import DeliveryGuard
from notifiers.held import HeldDeliveries
from notifiers.kafka_worker import KafkaNotifier
from notifiers.worker import RetryPolicy
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi
from subscriptions.redis import RedisSubscriptionStore
from tests.integration.test_kafka_notifier_merge import Rig, publish, rig, slack  # noqa: F401 - fixtures
from tests.integration.test_slack_alerts import alert
from tests.polling import until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(90)]

PARIS = ZoneInfo("Europe/Paris")


@dataclass
class FakeClock:
    now: float

    def __call__(self) -> float:
        return self.now


def paris(text: str) -> float:
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=PARIS).timestamp()


def night_alerts() -> list[Delivery]:
    """Four alerts to a channel quiet from 22:00 to 07:00, detected at 23:30; the third is rated urgent."""
    made = []
    for n in range(4):
        base = alert("slack://C0VIGIE01", n)
        sub = replace(base.subscription, id="night", quiet_hours="22:00-07:00")
        after = replace(base.change.current, rating=4 if n == 2 else 3)
        change = replace(base.change, after=after,
                         detected_at=datetime.fromtimestamp(paris("03-02 23:30"), PARIS))
        made.append(Delivery.of(change, sub))
    return made


async def test_quiet_hours_hold_alerts_in_redis_until_morning(rig: Rig, slack: FakeSlackApi) -> None:
    deliveries = night_alerts()
    await publish(rig, deliveries)
    clock = FakeClock(paris("03-02 23:30"))
    store = RedisSubscriptionStore(rig.redis_url, namespace=rig.namespace)
    guard = DeliveryGuard(rig.redis_url, namespace=rig.namespace)
    held = HeldDeliveries(rig.redis_url, namespace=rig.namespace, channel="slack")
    channels = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=slack.base_url, timeout=5.0)
    redis = Redis.from_url(rig.redis_url, decode_responses=True)
    worker = KafkaNotifier(rig.conf, store, guard, channels, policy=RetryPolicy(base=0.2), clock=clock, held=held)
    marks = [f"{rig.namespace}:delivery:{d.key}" for d in deliveries]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await slack.wait_for(1, timeout=30)
        await until(lambda: _equals(held.count(), 3), "three alerts held in Redis")
        assert "A corriger de manière urgente" in str(slack.messages[0].blocks), "the urgent one went at once"
        assert await redis.mget(marks) == [None, None, "done", None]

        clock.now = paris("03-03 07:00")
        await until(lambda: _all_done(redis, marks), "the held alerts are sent in the morning", deadline_s=30)
        # released together to the retry topic, they are merged as the notifier fetches them: one message when
        # one fetch holds all three (the usual case), two when a loaded machine splits the fetch
        morning = slack.messages[1:]
        assert 1 <= len(morning) <= 2, "the night's alerts merged"
        told = " ".join(str(m.blocks) for m in morning)
        assert all(f"Bistro {n:02d}" in told for n in (0, 1, 3))
        if len(morning) == 1:
            assert morning[0].blocks[0]["text"]["text"] == "3 alertes Vigie"
        assert await held.count() == 0
    finally:
        stop.set()
        await task
        for closing in (redis, channels, guard, held, store):
            await closing.aclose()


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _all_done(redis: Redis, marks: list[str]) -> bool:
    return all(value == "done" for value in await redis.mget(marks))
