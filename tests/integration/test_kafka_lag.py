"""Consumer lag from a real consumer's own state (notifiers/kafka_lag.py), into the Prometheus gauge."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import generate_latest

from notifiers.kafka_lag import consumer_lag
from runtime.metrics import Metrics
from tests import services
from tests.contract.conftest import unique


async def test_lag_follows_what_the_consumer_read_and_the_gauge_shows_it() -> None:
    bootstrap, topic = services.kafka_bootstrap_servers(), unique("lag")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        await producer.start()
        for i in range(10):
            await producer.send_and_wait(topic, f"r{i}".encode(), partition=0)
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        assert await consumer_lag({"g": consumer}) == {}  # nothing fetched yet: no highwater known
        read = await consumer.getone(TopicPartition(topic, 0))
        assert read.offset == 0
        lag = await consumer_lag({"g": consumer})
        assert lag[("g", topic, 0)] == 9
        metrics = Metrics()
        metrics.lagged(lag)
        assert f'vigie_kafka_consumer_lag{{group="g",partition="0",topic="{topic}"}} 9.0' in \
            generate_latest(metrics.registry).decode()
        metrics.lagged({})
        assert topic not in generate_latest(metrics.registry).decode()  # revoked: the series goes
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
