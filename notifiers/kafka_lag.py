"""A notifier's Kafka consumer lag, from its consumers' own state: no admin client, no broker round trip.

For each assigned partition, the end of the log as the last fetch saw it (`highwater`) minus the consumer's
position (the next offset it will fetch). A partition not fetched yet (no highwater) is left out; so is one
revoked while being read.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError

Lag = dict[tuple[str, str, int], int]  # (group, topic, partition) → records behind


async def consumer_lag(consumers: Mapping[str, AIOKafkaConsumer]) -> Lag:
    found: Lag = {}
    for group, consumer in list(consumers.items()):
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue
            try:
                position = await consumer.position(tp)
            except IllegalStateError:  # revoked meanwhile
                continue
            found[group, tp.topic, tp.partition] = max(end - position, 0)
    return found
