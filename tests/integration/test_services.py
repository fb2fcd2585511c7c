"""The real services answer, and Kafka's own tooling reads what our Python clients write.

Async tests rely on pytest-asyncio's auto mode (``asyncio_mode = "auto"``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.services import console_consume

PARTITIONS = 4
MESSAGES = 10
WAIT_S = 30.0

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True, slots=True)
class FilledTopic:
    name: str
    sent: list[dict[str, Any]]


@pytest.mark.redis
def test_redis_ping_set_get(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"vigie:test:{uuid.uuid4().hex}"
    try:
        assert client.ping() is True
        assert client.set(key, "Très satisfaisant", ex=60) is True
        assert client.get(key) == "Très satisfaisant".encode()
    finally:
        client.delete(key)
        client.close()


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create ``name`` and wait until every partition has a leader."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        assert [error for _topic, error, *_ in response.topic_errors] == [0]
        async with asyncio.timeout(WAIT_S):
            while True:  # poll the broker's metadata, bounded by the timeout above
                if await _has_leaders(admin, name, partitions):
                    break
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def _has_leaders(admin: AIOKafkaAdminClient, name: str, partitions: int) -> bool:
    (description,) = await admin.describe_topics([name])
    led = [p for p in description["partitions"] if p["error_code"] == 0 and p["leader"] >= 0]
    return description["error_code"] == 0 and len(led) == partitions


async def produce_json(bootstrap: str, topic: str, values: list[dict[str, Any]]) -> set[int]:
    """Send ``values`` round-robin over the partitions (idempotent, acks=all); return the partitions written."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        key_serializer=str.encode,
        value_serializer=lambda value: json.dumps(value, ensure_ascii=False).encode(),
    )
    await producer.start()
    try:
        sends = [
            await producer.send(topic, value, key=str(value["id"]), partition=index % PARTITIONS)
            for index, value in enumerate(values)
        ]
        written = await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return {metadata.partition for metadata in written}


async def consume_json(bootstrap: str, topic: str, count: int) -> list[dict[str, Any]]:
    """Read ``count`` values from the start of every partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    received: list[dict[str, Any]] = []
    try:
        consumer.assign([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        async with asyncio.timeout(WAIT_S):
            while len(received) < count:
                batches = await consumer.getmany(timeout_ms=500)
                received += [json.loads(record.value) for records in batches.values() for record in records]
    finally:
        await consumer.stop()
    return received


@pytest.fixture
async def filled_topic(kafka_bootstrap: str) -> AsyncIterator[FilledTopic]:
    """A fresh 4-partition topic holding 10 JSON messages, deleted afterwards."""
    name = f"vigie-test-services-{uuid.uuid4().hex[:12]}"
    await create_topic(kafka_bootstrap, name, PARTITIONS)
    sent = [{"id": i, "nom": f"Boulangerie n°{i}", "note": 1 + i % 4} for i in range(MESSAGES)]
    assert await produce_json(kafka_bootstrap, name, sent) == set(range(PARTITIONS))
    yield FilledTopic(name, sent)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


def by_id(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(values, key=lambda value: int(value["id"]))


@pytest.mark.kafka
async def test_kafka_aiokafka_round_trip(kafka_bootstrap: str, filled_topic: FilledTopic) -> None:
    received = await consume_json(kafka_bootstrap, filled_topic.name, MESSAGES)

    assert by_id(received) == filled_topic.sent


@pytest.mark.kafka
async def test_kafka_console_consumer_reads_our_topic(kafka_bootstrap: str, filled_topic: FilledTopic) -> None:
    lines = await asyncio.to_thread(console_consume, filled_topic.name, MESSAGES, bootstrap=kafka_bootstrap)

    assert by_id([json.loads(line) for line in lines]) == filled_topic.sent
