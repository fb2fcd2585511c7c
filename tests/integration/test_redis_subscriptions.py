"""RedisSubscriptionStore beyond the contract: publishing to the compacted `subscriptions` topic on real Kafka,
the failure mode (Redis ahead of the topic) and the resync."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from core.codec import SUBSCRIPTION, decode, subscription_to_dict
from core.errors import PublishError
from core.geo import Circle, Everywhere, Point
from core.model import Filter, Subscription
from core.topology import TopicSpec, subscriptions_spec
from streams.bus.kafka import ensure_topics
from subscriptions.publisher import TOPIC, KafkaSubscriptionPublisher
from subscriptions.redis import RedisSubscriptionStore
from tests.contract.conftest import drop_namespace, unique

pytestmark = pytest.mark.redis
SECRET = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def sub(sid: str, label: str = "", secret: str | None = None) -> Subscription:
    return Subscription(sid, Circle(Point(48.8566, 2.3522), 800.0), "webhook+https://partner.example/h",
                        Filter(min_rating=3), "fr", secret, label)


class FlakyPublisher:
    """A SubscriptionPublisher that records what it is given, and fails while `down` is set."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[tuple[str, Subscription | None]] = []

    async def publish(self, subscription_id: str, subscription: Subscription | None) -> None:
        if self.down:
            raise PublishError("broker unreachable", retriable=True)
        self.sent.append((subscription_id, subscription))

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    name = unique("test-subscriptions")
    yield name
    await drop_namespace(redis_url, name)


async def read_topic(bootstrap: str, prefix: str) -> list[tuple[str, bytes | None]]:
    """Every message of the topic whose key starts with `prefix`, from the beginning up to its current end."""
    partitions = [TopicPartition(TOPIC, p) for p in await partition_ids(bootstrap, TOPIC)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        found: list[tuple[str, bytes | None]] = []
        async with asyncio.timeout(30):
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    found.extend((r.key.decode(), r.value) for r in records if r.key.decode().startswith(prefix))
        return found
    finally:
        await consumer.stop()



def publisher_on(bootstrap: str) -> KafkaSubscriptionPublisher:
    """The publisher as runtime wires it: the topic created (compacted) by the roles' one creation path."""
    return KafkaSubscriptionPublisher(bootstrap, ensure=lambda spec: ensure_topics(bootstrap, [spec]))

async def test_writes_reach_the_compacted_topic(redis_url: str, kafka_bootstrap: str, namespace: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}-"
    publisher = publisher_on(kafka_bootstrap)
    store = RedisSubscriptionStore(redis_url, namespace=namespace, publisher=publisher)
    try:
        await store.put(sub(prefix + "a", "first", secret=SECRET))
        await store.put(sub(prefix + "b"))
        await store.put(sub(prefix + "a", "second", secret=SECRET))
        assert await store.delete(prefix + "b") is True
        assert await store.pending() == []
    finally:
        await store.aclose()

    messages = await read_topic(kafka_bootstrap, prefix)
    assert [(key, value is None) for key, value in messages] == [
        (prefix + "a", False), (prefix + "b", False), (prefix + "a", False), (prefix + "b", True)]
    envelope = decode(messages[2][1])
    assert (envelope.type, envelope.subject) == (SUBSCRIPTION, prefix + "a")
    assert envelope.data == subscription_to_dict(sub(prefix + "a", "second"), include_secret=False)
    assert envelope.data["secret"] is None
    assert await cleanup_policy(kafka_bootstrap, TOPIC) == "compact"


async def partition_ids(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})])
        [resource] = response.to_object()["resources"]
        [entry] = resource["config_entries"]
        return str(entry["config_value"])
    finally:
        await admin.close()


async def test_concurrent_writers_leave_the_topic_equal_to_redis(
    redis_url: str, kafka_bootstrap: str, namespace: str
) -> None:
    prefix = f"race-{uuid.uuid4().hex[:8]}-"
    sid = prefix + "x"
    stores = [RedisSubscriptionStore(redis_url, namespace=namespace,
                                     publisher=publisher_on(kafka_bootstrap)) for _ in range(3)]
    try:
        await asyncio.gather(*(stores[i % 3].put(sub(sid, f"v{i}")) for i in range(30)))
        stored = await stores[0].get(sid)
        assert stored is not None
    finally:
        for store in stores:
            await store.aclose()
    last = (await read_topic(kafka_bootstrap, prefix))[-1]
    assert decode(last[1]).data == subscription_to_dict(stored, include_secret=False)


async def test_failed_publish_leaves_redis_ahead_until_republished(redis_url: str, namespace: str) -> None:
    publisher = FlakyPublisher()
    store = RedisSubscriptionStore(redis_url, namespace=namespace, publisher=publisher)
    try:
        await store.put(sub("kept"))
        await store.put(sub("doomed"))
        publisher.down = True
        with pytest.raises(PublishError):
            await store.put(sub("new", "while down"))
        with pytest.raises(PublishError):
            await store.delete("doomed")
        assert await store.get("new") == sub("new", "while down")
        assert await store.pending() == ["doomed", "new"]

        publisher.down = False
        assert await store.republish_pending() == ["doomed", "new"]
        assert await store.pending() == []
        assert publisher.sent[-2:] == [("doomed", None), ("new", sub("new", "while down"))]
    finally:
        await store.aclose()


async def test_republish_all_sends_every_subscription(redis_url: str, namespace: str) -> None:
    publisher = FlakyPublisher()
    store = RedisSubscriptionStore(redis_url, namespace=namespace, publisher=publisher)
    try:
        for sid in ("c", "a", "b"):
            await store.put(Subscription(sid, Everywhere(), "console://"))
        publisher.sent.clear()
        assert await store.republish_all() == 3
        assert sorted(sid for sid, _ in publisher.sent) == ["a", "b", "c"]
        assert await store.pending() == []
    finally:
        await store.aclose()


async def test_without_publisher_nothing_is_tracked(redis_url: str, namespace: str) -> None:
    store = RedisSubscriptionStore(redis_url, namespace=namespace)
    try:
        await store.put(sub("quiet"))
        assert await store.delete("quiet") is True
        assert await store.pending() == []
        with pytest.raises(PublishError):
            await store.republish_all()
    finally:
        await store.aclose()


async def test_unreachable_broker_raises_publish_error_after_the_write(redis_url: str, namespace: str) -> None:
    store = RedisSubscriptionStore(redis_url, namespace=namespace,
                                   publisher=KafkaSubscriptionPublisher("127.0.0.1:9", timeout_s=5.0))
    try:
        with pytest.raises(PublishError) as caught:
            await store.put(sub("orphan"))
        assert caught.value.retriable is True
        assert await store.get("orphan") == sub("orphan")
        assert await store.pending() == ["orphan"]
    finally:
        await store.aclose()


async def test_get_many_reads_what_get_reads(redis_url: str, namespace: str) -> None:
    store = RedisSubscriptionStore(redis_url, namespace=namespace)
    try:
        for i in range(5):
            await store.put(sub(f"s{i}", label=f"n{i}", secret=SECRET))
        await store.delete("s3")
        wanted = ["s4", "s0", "s3", "missing", "s0", "s2"]
        found = await store.get_many(wanted)
        assert sorted(found) == ["s0", "s2", "s4"]
        for sid, subscription in found.items():
            assert subscription == await store.get(sid)
        assert await store.get_many([]) == {}
    finally:
        await store.aclose()


async def test_a_store_emptied_behind_its_back_says_it_lost_its_data(redis_url: str, namespace: str) -> None:
    """The marker key comes with the first subscription and stays through deletes; a Redis that restarted without
    persistence (or was flushed) has none, and `lost()` says so. A store written before the marker existed (its
    sequence only) is not lost."""
    store = RedisSubscriptionStore(redis_url, namespace=namespace)
    try:
        assert await store.lost(), "nothing written yet: no trace (callers ask only with evidence of subscriptions)"
        await store.put(sub("a"))
        await store.delete("a")
        assert not await store.lost(), "deleting every subscription is not losing the store"
        await drop_namespace(redis_url, namespace)  # what an empty restart leaves
        assert await store.lost()
        await store._redis.set(store._seq, 7)  # a store from before the marker
        assert not await store.lost()
    finally:
        await store.aclose()


async def test_an_existing_subscriptions_topic_that_is_not_compacted_is_used_with_a_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 1)])  # created by hand, with the default retention
    with caplog.at_level("WARNING", logger="streams.bus.kafka"):
        assert await ensure_topics(kafka_bootstrap, [subscriptions_spec(name, 1)]) == []
    assert f"topic {name} has cleanup.policy=delete, not compact" in caplog.text
    caplog.clear()
    compacted = f"compacted-{uuid.uuid4().hex[:8]}"
    assert await ensure_topics(kafka_bootstrap, [subscriptions_spec(compacted, 1)]) == [compacted]
    with caplog.at_level("WARNING", logger="streams.bus.kafka"):
        assert await ensure_topics(kafka_bootstrap, [subscriptions_spec(compacted, 1)]) == []
    assert "not compact" not in caplog.text
