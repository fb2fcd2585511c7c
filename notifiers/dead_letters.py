"""Dead letters of the distributed runtime: listed from `dlq.deliveries.<channel>`, replayed to the retry topic.

The Kafka notifier dead-letters a delivery (attempts exhausted, or refused for good) by copying its record to
`dlq.deliveries.<channel>` with `vigie-dlq-reason` and `vigie-attempt` headers (kafka_worker.py). Listing reads
those topics from their beginning to their end (no consumer group: nothing is committed); a record that is not
a delivery envelope (dead-lettered as malformed) is not listed. Replaying a dead letter produces its record to
`deliveries.<channel>.retry` as a first attempt, due now, and remembers the dead letter's coordinates in Redis so
it is not listed again (if it dies again, its new dead letter is listed):

    {ns}:replayed    set   "<topic>:<partition>:<offset>" of every dead letter replayed

The id of a dead letter is its delivery's idempotency key; when a key died more than once, its latest dead
letter stands for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from redis.asyncio import Redis

from core.codec import DELIVERY, KAFKA_HEADERS, decode, delivery_from_dict, read
from core.errors import EnvelopeError
from core.ports import DeadLetter
from core.topology import ATTEMPT, DLQ_REASON, header, retry_headers
from notifiers.kafka_messages import NotifierConfig

FETCH_MS = 500


@dataclass(frozen=True, slots=True)
class _Found:
    letter: DeadLetter
    record: ConsumerRecord[bytes, bytes]
    retry_topic: str

    @property
    def where(self) -> str:
        return f"{self.record.topic}:{self.record.partition}:{self.record.offset}"


def _letter(record: ConsumerRecord[bytes, bytes], channel: str) -> DeadLetter | None:
    try:
        delivery = read(decode(record.value), DELIVERY, delivery_from_dict)
        attempts = int(header(record.headers, ATTEMPT) or 0)
    except (EnvelopeError, ValueError):
        return None
    return DeadLetter(delivery.key, delivery.subscription.id, channel, delivery.change.id, delivery.change.kind,
                      attempts, header(record.headers, DLQ_REASON) or "")


class KafkaDeadLetters:
    """core.ports.DeadLetters over the notifiers' dead-letter topics (see the module docstring)."""

    def __init__(self, bootstrap: str, *, redis_url: str, channels: Sequence[str], prefix: str = "",
                 namespace: str = "vigie") -> None:
        self._bootstrap = bootstrap
        self._confs = [NotifierConfig(channel=c, bootstrap=bootstrap, group="", prefix=prefix) for c in channels]
        self._redis = Redis.from_url(redis_url, decode_responses=True)
        self._replayed = f"{namespace}:replayed"

    async def dead(self, limit: int = 1000) -> list[DeadLetter]:
        return [found.letter for found in (await self._found())[:limit]]

    async def replay(self, key: str) -> bool:
        found = next((f for f in await self._found() if f.letter.key == key), None)
        if found is None:
            return False
        headers = list(KAFKA_HEADERS + retry_headers(0, not_before=time.time()))
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            await producer.send_and_wait(found.retry_topic, found.record.value, key=found.record.key, headers=headers)
        finally:
            await producer.stop()
        await self._redis.sadd(self._replayed, found.where)
        return True

    async def _found(self) -> list[_Found]:
        """Every dead letter not replayed, the latest per key, most recent first."""
        replayed = await self._redis.smembers(self._replayed)
        latest: dict[str, _Found] = {}
        for conf in self._confs:
            for record in await self._read(conf.dlq(conf.topic)):
                letter = _letter(record, conf.channel)
                found = None if letter is None else _Found(letter, record, conf.retry_topic)
                if found is not None and found.where not in replayed:
                    latest[letter.key if letter else ""] = found
        return sorted(latest.values(), key=lambda f: f.record.timestamp, reverse=True)

    async def _read(self, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in await self._partitions(topic)]
            if not partitions:
                return []
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            records: list[ConsumerRecord[bytes, bytes]] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batches = await consumer.getmany(*partitions, timeout_ms=FETCH_MS)
                records += [record for batch in batches.values() for record in batch]
            return records
        finally:
            await consumer.stop()

    async def _partitions(self, topic: str) -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        if not described or described[0].get("error_code"):  # no such topic (yet): no dead letter
            return []
        return [int(p["partition"]) for p in described[0]["partitions"]]

    async def aclose(self) -> None:
        await self._redis.aclose()
