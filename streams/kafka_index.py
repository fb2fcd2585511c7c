"""The subscription index of a stream worker, kept current from the compacted `subscriptions` topic.

Every worker must know *every* subscription, whatever partitions of `changes` it owns, so the topic is read by
a plain consumer outside any group: all partitions assigned, read from the beginning. `ready` is set once the
positions reach the end offsets seen at start, i.e. the index holds everything published before the worker
came up; matching waits for it. Then the feed keeps tailing: a put replaces, a tombstone (null value) deletes.

A message that is not a subscription envelope, or that the index cannot take, is dead-lettered to
`dlq.subscriptions` (by every worker that reads it: the topic is read in full by each) and skipped: a feed that
failed on it would read the topic again from the beginning, fail again, and never get ready. If the feed fails
(broker trouble), `run()` raises and is run again: it rebuilds a fresh index from the beginning and swaps it in
once caught up, serving the old one meanwhile.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from core.codec import SUBSCRIPTION, decode, read, subscription_from_dict
from core.errors import EnvelopeError
from core.index import SubscriptionIndex
from streams.bus.kafka import KafkaBus

log = logging.getLogger(__name__)


class SubscriptionFeed:
    """Applies the `subscriptions` topic to `index`; `run()` until cancelled."""

    def __init__(self, bus: KafkaBus, *, index: SubscriptionIndex | None = None,
                 client_id: str = "vigie-index") -> None:
        self.bus = bus
        self.index = SubscriptionIndex() if index is None else index
        self.ready = asyncio.Event()
        self.topic = bus.topics.subscriptions
        self._client_id = client_id

    async def run(self) -> None:
        """Read the topic from the beginning into a fresh index, swap it in once caught up, then keep tailing."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bus.bootstrap, group_id=None, client_id=self._client_id,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in await self.bus.partitions(self.topic)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            fresh = type(self.index)()  # of the kind it was given
            while True:
                if fresh is not self.index and await self._caught_up(consumer, end):
                    self.index = fresh
                    log.info("subscription index ready: %d subscription(s)", len(fresh), extra={"topic": self.topic})
                    self.ready.set()
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for records in batches.values():
                    await self._apply(fresh, records)
        finally:
            await consumer.stop()

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await consumer.position(tp) < offset:
                return False
        return True

    async def _apply(self, index: SubscriptionIndex, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        dead = []
        for record in records:
            try:
                apply(index, record.key, record.value)
            except EnvelopeError as exc:
                dead.append(self.bus.dead_letter(record, str(exc)))
            except Exception as exc:  # one subscription the index cannot take must not stop every match, forever
                log.exception("cannot index %s[%d]@%d", record.topic, record.partition, record.offset)
                dead.append(self.bus.dead_letter(record, f"indexing failed: {type(exc).__name__}: {exc}"))
        if dead:
            await self.bus.send_all(dead)



def apply(index: SubscriptionIndex, key: bytes | None, value: bytes | None) -> None:
    """One message of the topic: EnvelopeError when it is neither a subscription nor a tombstone."""
    if value is None:
        if key is None:
            raise EnvelopeError("tombstone without a key")
        index.remove(key.decode(errors="replace"))
        return
    subscription = read(decode(value), SUBSCRIPTION, subscription_from_dict)
    if key is not None and key.decode(errors="replace") != subscription.id:
        raise EnvelopeError(f"key {key!r} is not the subscription id {subscription.id!r}")
    index.add(subscription)
