"""The Kafka notifier merges a Slack channel's burst as the embedded worker does, on a real broker and Redis.

Seventy alerts for two subscriptions of one Slack channel wait on `deliveries.slack`; a KafkaNotifier with the
Redis guard and the production Channels, pointed at the local Slack stand-in, sends them as a few merged
messages (one per rate slot, up to the merge limit), and the guard marks every delivery done under its own
idempotency key. A merged message the stand-in refuses (HTTP 500) goes back to the retry topic whole and is
merged again.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from core.model import Delivery
from core.topology import Topics, TopicSpec
from notifiers import Channels
from notifiers.guard import DeliveryGuard
from notifiers.kafka_worker import KafkaNotifier, NotifierConfig
from notifiers.worker import RetryPolicy
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi
from streams.bus.kafka import delivery_message, ensure_topics
from subscriptions.redis import RedisSubscriptionStore
from tests.integration.test_slack_alerts import alert, text_of
from tests.polling import until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(90)]

BURST = 70


@dataclass
class Rig:
    conf: NotifierConfig
    redis_url: str
    namespace: str


@pytest.fixture
async def rig(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:10]
    conf = NotifierConfig(channel="slack", bootstrap=kafka_bootstrap, group=f"merge-{tag}", prefix=f"t{tag}.")
    await ensure_topics(kafka_bootstrap, [TopicSpec(conf.topic, 2), TopicSpec(conf.retry_topic, 2),
                                          TopicSpec(conf.dlq(conf.topic), 1)])
    yield Rig(conf, redis_url, f"merge-{tag}")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([conf.topic, conf.retry_topic, conf.dlq(conf.topic)])
    finally:
        await admin.close()
    redis = Redis.from_url(redis_url)
    keys = [k async for k in redis.scan_iter(match=f"*merge-{tag}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackApi]:
    api = FakeSlackApi()
    await api.start()
    yield api
    await api.close()


async def publish(rig: Rig, deliveries: list[Delivery]) -> None:
    store = RedisSubscriptionStore(rig.redis_url, namespace=rig.namespace)
    for subscription in {d.subscription.id: d.subscription for d in deliveries}.values():
        await store.put(subscription)
    await store.aclose()
    producer = AIOKafkaProducer(bootstrap_servers=rig.conf.bootstrap)
    await producer.start()
    try:
        topics = Topics(rig.conf.prefix)
        for delivery in deliveries:
            message = delivery_message(topics, delivery)
            await producer.send_and_wait(message.topic, message.value, key=message.key, headers=list(message.headers))
    finally:
        await producer.stop()


async def deliver(rig: Rig, slack: FakeSlackApi, deliveries: list[Delivery]) -> list[str]:
    """Run a notifier until every delivery is marked done in Redis; the done marks' values."""
    store = RedisSubscriptionStore(rig.redis_url, namespace=rig.namespace)
    guard = DeliveryGuard(rig.redis_url, namespace=rig.namespace)
    channels = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=slack.base_url, timeout=5.0)
    redis = Redis.from_url(rig.redis_url, decode_responses=True)
    worker = KafkaNotifier(rig.conf, store, guard, channels, policy=RetryPolicy(base=0.2))
    marks = [f"{rig.namespace}:delivery:{d.key}" for d in deliveries]
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await until(lambda: _all_done(redis, marks), "every delivery is marked done", deadline_s=60)
        return [str(value) for value in await redis.mget(marks)]
    finally:
        stop.set()
        await task
        await redis.aclose()
        await channels.aclose()
        await guard.aclose()
        await store.aclose()


async def _all_done(redis: Redis, marks: list[str]) -> bool:
    return all(value == "done" for value in await redis.mget(marks))


def names_in(slack: FakeSlackApi) -> list[str]:
    """The alerts named in the messages' blocks."""
    return sorted(set(re.findall(r"Bistro (\d\d)", " ".join(text_of(m) for m in slack.messages))))


async def test_a_burst_to_one_slack_channel_goes_out_merged(rig: Rig, slack: FakeSlackApi) -> None:
    deliveries = [alert("slack://C0VIGIE01", n, label="Bureau") for n in range(BURST)]
    await publish(rig, deliveries)

    marks = await deliver(rig, slack, deliveries)

    assert marks == ["done"] * BURST
    assert 2 <= len(slack.messages) <= 4, [m.text[:60] for m in slack.messages]
    assert names_in(slack) == [f"{n:02d}" for n in range(BURST)], "every alert in some message"
    assert all(m.channel == "C0VIGIE01" for m in slack.messages)


async def test_a_refused_merged_message_is_retried_whole(rig: Rig, slack: FakeSlackApi) -> None:
    deliveries = [alert("slack://C0VIGIE01", n) for n in range(12)]
    await publish(rig, deliveries)
    slack.fail_next(500)

    marks = await deliver(rig, slack, deliveries)

    assert marks == ["done"] * 12
    assert len(slack.requests) == len(slack.messages) + 1, "one merged message was refused, then sent again"
    assert names_in(slack) == [f"{n:02d}" for n in range(12)]
    assert len(slack.messages) <= 4
