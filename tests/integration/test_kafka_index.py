"""The stream workers' subscription feed gets ready even when one subscription cannot be indexed (real Kafka)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from core.codec import SUBSCRIPTION, Envelope, subscription_to_dict
from core.geo import Everywhere
from core.index import SubscriptionIndex
from core.model import Subscription
from core.topology import Topics, TopicSpec
from streams.bus.kafka import KafkaBus, ensure_topics
from streams.kafka_index import SubscriptionFeed
from tests.unit.core.factories import AT

pytestmark = [pytest.mark.kafka]


class Refusing(SubscriptionIndex):
    """An index that cannot take one subscription (as a shape it does not know would)."""

    def add(self, subscription: Subscription) -> None:
        if subscription.id == "sub_bad":
            raise RuntimeError("no cell for this area")
        super().add(subscription)


def envelope(subscription: Subscription) -> bytes:
    data = subscription_to_dict(subscription, include_secret=False)
    return Envelope(subscription.id, SUBSCRIPTION, "/test", subscription.id, AT, data).encode()


async def test_a_subscription_the_index_cannot_take_is_dead_lettered_and_the_feed_gets_ready(
        kafka_bootstrap: str) -> None:
    topics = Topics(f"t{uuid.uuid4().hex[:8]}.")
    await ensure_topics(kafka_bootstrap, [TopicSpec(topics.subscriptions, 2),
                                          TopicSpec(topics.dlq(topics.subscriptions), 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    for sub_id in ("sub_a", "sub_bad", "sub_b"):
        await producer.send_and_wait(topics.subscriptions, envelope(Subscription(sub_id, Everywhere(), "console://")),
                                     key=sub_id.encode())
    await producer.stop()

    bus = KafkaBus(kafka_bootstrap, topics=topics)
    await bus.start()
    feed = SubscriptionFeed(bus, index=Refusing())
    task = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(30):
            await feed.ready.wait()
        assert (len(feed.index), "sub_a" in feed.index, "sub_bad" in feed.index) == (2, True, False)
        assert await dead_letters(kafka_bootstrap, topics.dlq(topics.subscriptions)) == [b"sub_bad"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.stop()


async def dead_letters(bootstrap: str, topic: str) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            message = await consumer.getone()
        return [message.key]
    finally:
        await consumer.stop()
