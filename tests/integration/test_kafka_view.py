"""The distributed current-state view follows the `changes` topic (real Kafka, real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer

from core.codec import CHANGE, Envelope, change_to_dict
from core.diff import diff_one, removal
from core.model import Change
from core.topology import HELD, TopicSpec
from streams.bus.kafka import ensure_topics
from streams.changelog_redis import RedisChangeLog
from streams.kafka_view import ViewUpdater
from streams.view_redis import RedisCurrentView
from tests.unit.core.factories import AT, PARIS, inspection

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def envelope(change: Change) -> bytes:
    return Envelope(change.id, CHANGE, "/test", change.key, change.detected_at, change_to_dict(change)).encode()


async def test_changes_fold_into_the_redis_view(kafka_bootstrap: str, redis_url: str) -> None:
    topic, namespace = f"changes-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 2)])
    first, later = inspection("k1", entity="e1", date="2025-03-01"), inspection("k2", entity="e1", date="2025-05-01")
    gone = inspection("k3", entity="e3", date="2025-04-01")
    created = [diff_one(None, r, at=AT, version="v1") for r in (first, later, gone)]
    messages = [envelope(c) for c in created if c is not None]
    messages += [b"not json", envelope(removal(gone, at=AT + timedelta(days=7), version="v2"))]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    for value in messages:
        await producer.send_and_wait(topic, value, key=b"e")
    await producer.stop()

    view = RedisCurrentView(redis_url, dataset="alimconfiance", namespace=namespace)
    stop = asyncio.Event()
    updater = ViewUpdater(kafka_bootstrap, topic, f"view-{namespace}", {"alimconfiance": view})
    task = asyncio.create_task(updater.run(stop))
    try:
        async with asyncio.timeout(30):
            await updater.wait_consumed(len(messages))
        shown = await view.get("e1")
        assert shown is not None
        assert shown.key == "k2"
        assert await view.get("e3") is None
        near = await view.near(PARIS.lat, PARIS.lon, 500)
        assert [r.key for r, _ in near] == ["k2"]
    finally:
        stop.set()
        await task
        await view.aclose()


async def test_published_changes_are_appended_to_the_feed_log_held_ones_are_not(kafka_bootstrap: str,
                                                                                redis_url: str) -> None:
    topic, namespace = f"changes-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    made = [diff_one(None, inspection(f"k{n}", entity=f"e{n}", date="2025-03-01"), at=AT, version="v1")
            for n in range(3)]
    changes = [c for c in made if c is not None]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    for n, change in enumerate(changes):
        held = [(HELD, b"event-1")] if n == 1 else []
        await producer.send_and_wait(topic, envelope(change), key=b"e", headers=held)
    await producer.stop()

    view = RedisCurrentView(redis_url, dataset="alimconfiance", namespace=namespace)
    log = RedisChangeLog(redis_url, namespace=namespace)
    stop = asyncio.Event()
    updater = ViewUpdater(kafka_bootstrap, topic, f"view-{namespace}", {"alimconfiance": view}, log=log)
    task = asyncio.create_task(updater.run(stop))
    try:
        async with asyncio.timeout(30):
            await updater.wait_consumed(len(changes))
        logged = await log.after(None, 10)
        assert [c.id for _, c in logged] == [changes[0].id, changes[2].id]
        assert [c.id for _, c in await log.after(logged[0][0], 10)] == [changes[2].id]
        assert await view.get("e1") is not None  # the held change is in the view all the same
    finally:
        stop.set()
        await task
        await log.aclose()
        await view.aclose()
