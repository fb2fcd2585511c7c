"""What the distributed roles sample into `vigie_kafka_consumer_lag` (runtime/metrics.py `sample_lag`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from notifiers.kafka_lag import consumer_lag
from notifiers.kafka_worker import KafkaNotifier
from runtime.metrics import ConsumerLag
from streams.faust_app import Streams

Read = Callable[[], Awaitable[ConsumerLag]]


def agents_lag(streams: Streams) -> Read:
    """The stream worker's diff and match agents: records fetched by faust's consumer, not processed yet."""

    async def read() -> ConsumerLag:
        group = streams.conf.app_id  # faust's consumer group
        return {(group, topic, partition): behind for (topic, partition), behind in streams.lag().items()}

    return read


def notifier_lag(worker: KafkaNotifier) -> Read:
    """A notifier's deliveries and retry consumers: records on the partition not fetched yet."""
    return lambda: consumer_lag(worker.consumers)
