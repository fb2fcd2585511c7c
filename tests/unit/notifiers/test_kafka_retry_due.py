"""Which retries are due (notifiers/kafka_worker.py `KafkaNotifier._due`): the partition pauses at the first one
that is not, and a not-before beyond any delay a notifier writes counts as due now."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from notifiers.kafka_worker import CLOCK_SKEW_S, KafkaNotifier, NotifierConfig, Record
from notifiers.worker import RetryPolicy

NOW = 1_800_000_000.0
TP = TopicPartition("deliveries.webhook.retry", 0)


@dataclass
class Message:
    offset: int
    headers: Sequence[tuple[str, bytes]]
    topic: str = TP.topic
    partition: int = TP.partition
    key: bytes | None = b"sub"
    value: bytes | None = b"{}"


def due_at(offset: int, not_before: float | str | None) -> Record:
    headers = [] if not_before is None else [("vigie-not-before", str(not_before).encode())]
    return Message(offset, headers)


def as_aiokafka(consumer: Consumer) -> Any:
    return consumer


@dataclass
class Consumer:
    """The two calls `_due` makes on aiokafka's consumer."""

    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    paused: list[TopicPartition] = field(default_factory=list)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.extend(tps)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def resume(self, *tps: TopicPartition) -> None:
        pass


@pytest.fixture
async def notifier() -> AsyncIterator[KafkaNotifier]:
    conf = NotifierConfig(channel="webhook", bootstrap="127.0.0.1:1", group="g", busy_delay_s=30.0)
    unused: Any = None  # _due reads headers only: no store, guard or sender is reached
    made = KafkaNotifier(conf, unused, unused, unused, policy=RetryPolicy(max_delay=600.0), clock=lambda: NOW)
    yield made
    await made._producer.stop()  # never started: closes it without a broker


async def test_the_partition_pauses_at_the_first_retry_not_due(notifier: KafkaNotifier) -> None:
    consumer = Consumer()
    records = [due_at(5, None), due_at(6, NOW - 1), due_at(7, NOW + 60), due_at(8, NOW - 5)]
    assert notifier._due(as_aiokafka(consumer), TP, records) == records[:2]
    assert consumer.seeks == [(TP, 7)]
    assert consumer.paused == [TP]


async def test_a_not_before_beyond_any_delay_a_notifier_writes_is_due_now(notifier: KafkaNotifier) -> None:
    assert notifier.longest_wait_s == 600.0 + CLOCK_SKEW_S
    consumer = Consumer()
    records = [due_at(1, NOW + 600.0), due_at(2, NOW + 10 * 365 * 86400), due_at(3, "not-a-number")]
    due = notifier._due(as_aiokafka(consumer), TP, records)
    assert due == []  # the first (10 minutes: a delay the policy allows) still pauses the partition
    consumer = Consumer()
    due = notifier._due(as_aiokafka(consumer), TP, records[1:])
    assert due == records[1:], "ten years ahead is due now; an unreadable header is due (and dead-lettered)"
    assert consumer.paused == []
