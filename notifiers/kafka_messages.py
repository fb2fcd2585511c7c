"""What the Kafka notifier (kafka_worker.py) reads and writes: consumed records, the headers it puts on re-queues
and dead letters, its configuration, the surfaces of the subscription store and the guard it uses, and how it
commits and resumes a partition. Topic and header names, and the headers themselves, are core/topology.py's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from core.errors import EnvelopeError
from core.model import Subscription
from core.topology import Headers, Topics, header
from notifiers.guard import Claim

log = logging.getLogger(__name__)


class Record(Protocol):
    """A consumed message (aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Subscriptions(Protocol):
    async def get_many(self, subscription_ids: Iterable[str]) -> dict[str, Subscription]: ...

    async def lost(self) -> bool:
        """True when the store has lost its data (a Redis that came back empty)."""
        ...


class Guard(Protocol):
    """notifiers.guard.DeliveryGuard's surface the worker uses."""

    async def claim(self, key: str) -> Claim: ...

    async def claim_many(self, keys: Sequence[str]) -> list[Claim]: ...

    async def done_many(self, keys: Sequence[str]) -> None: ...

    async def release(self, key: str) -> bool: ...

    async def acquire_for(self, channel: str, destination: str) -> float: ...

    async def acquire_many(self, wanted: Sequence[tuple[str, str]]) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    channel: str
    bootstrap: str
    group: str
    prefix: str = ""
    busy_delay_s: float = 30.0
    inline_wait_s: float = 2.0
    reclaim_after_s: float = 30.0
    max_records: int = 500
    concurrency: int = 64
    session_timeout_s: float = 10.0  # unheard that long (paused, starved), the member is out of its group

    @property
    def topic(self) -> str:
        return Topics(self.prefix).deliveries(self.channel)

    @property
    def retry_topic(self) -> str:
        return Topics(self.prefix).retry(self.channel)

    def dlq(self, topic: str) -> str:
        return Topics(self.prefix).dlq(topic)


def retry_header(record: Record, name: str, parse: Callable[[str], float]) -> float:
    """A number the notifier wrote in a header (0 when absent); EnvelopeError when it cannot be read, so a
    message with garbage headers is dead-lettered like one with a garbage value instead of stopping the consumer."""
    try:
        raw = header(record.headers, name)
        value = 0.0 if raw is None else parse(raw)
    except ValueError as exc:  # not a number, or not UTF-8
        raise EnvelopeError(f"unreadable {name} header: {exc}") from exc
    if not math.isfinite(value):
        raise EnvelopeError(f"unreadable {name} header: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    record: Record
    headers: Headers


async def commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
    """Commit `tp` up to `offset`. A rebalance may have given the partition to another member meanwhile (this one
    was paused, or slow, past its session timeout): the commit then fails, which is expected and harmless, since
    the new owner reads the records again and the done marks make it skip what was sent."""
    try:
        await consumer.commit({tp: offset})
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("offsets of %s not committed after a rebalance (%s): its owner reads them again",
                    tp, type(exc).__name__, extra={"topic": tp.topic, "partition": tp.partition})
    except KafkaError as exc:  # broker trouble: the next commit of the partition covers these offsets
        log.warning("offsets of %s not committed (%r): the next commit covers them", tp, exc,
                    extra={"topic": tp.topic, "partition": tp.partition, "collapse": True})


def resume(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
    if tp in consumer.assignment():
        consumer.resume(tp)
