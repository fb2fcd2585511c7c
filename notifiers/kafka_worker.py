"""The notifier role on Kafka: one consumer group per channel reads `deliveries.<channel>` and sends.

For each delivery, in partition order (deliveries of one subscription share a partition, so their order holds):

    1. read the envelope               malformed → `dlq.<topic>` with the reason
    2. resolve the subscription        from the subscription store (the secret is never on the bus);
                                       deleted → dropped
    3. claim its idempotency key       guard (Redis SET NX + TTL): done already → skip; busy elsewhere → re-queue
    4. respect the destination's rate  a short wait inline; a long one → re-queue
    5. send                            Channels.send; DeliveryError says whether to retry
    6. done / re-queue / dead letter   then, for the whole batch, commit the offsets

A retriable failure does not block the partition: the delivery is re-queued to `deliveries.<channel>.retry` with
its attempt count and a not-before time in headers (`RetryPolicy` backoff, or the destination's Retry-After).
The retry consumer (its own group) pauses a partition whose head is not due yet and resumes it on time. After
the last attempt, or on a failure no retry can fix, the delivery goes to `dlq.deliveries.<channel>` with the
reason. Headers:

    vigie-attempt        attempts made so far
    vigie-not-before     Unix time (seconds) before which the retry must not be sent
    vigie-dlq-reason     why it was dead-lettered (also vigie-dlq-topic, -partition, -offset)

Offsets are committed only after every re-queue and dead letter of the batch is acknowledged: a crash repeats
work, and the guard's claims (plus the receivers' dedupe on the idempotency key) absorb the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core.codec import DELIVERY, decode, delivery_from_dict, read
from core.errors import DeliveryError, EnvelopeError
from core.model import Delivery, Subscription
from notifiers import mask
from notifiers.guard import Claim
from notifiers.worker import RetryPolicy

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


class Record(Protocol):
    """A consumed message (aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Subscriptions(Protocol):
    async def get(self, subscription_id: str) -> Subscription | None: ...


class Guard(Protocol):
    """notifiers.guard.DeliveryGuard's surface the worker uses."""

    async def claim(self, key: str) -> Claim: ...

    async def done(self, key: str) -> None: ...

    async def release(self, key: str) -> bool: ...

    async def acquire_for(self, channel: str, destination: str) -> float: ...


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> None: ...


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    channel: str
    bootstrap: str
    group: str
    prefix: str = ""
    busy_delay_s: float = 30.0
    inline_wait_s: float = 2.0
    max_records: int = 500
    concurrency: int = 64

    @property
    def topic(self) -> str:
        return f"{self.prefix}deliveries.{self.channel}"

    @property
    def retry_topic(self) -> str:
        return f"{self.topic}.retry"

    def dlq(self, topic: str) -> str:
        return f"{self.prefix}dlq.{topic.removeprefix(self.prefix)}"


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    found = [value for key, value in headers or () if key == name]
    return found[-1].decode() if found else None


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


def dead_letter_headers(record: Record, reason: str, attempt: int | None = None) -> Headers:
    headers = [("vigie-dlq-reason", reason.encode()), ("vigie-dlq-topic", record.topic.encode()),
               ("vigie-dlq-partition", str(record.partition).encode()),
               ("vigie-dlq-offset", str(record.offset).encode())]
    return headers if attempt is None else [*headers, ("vigie-attempt", str(attempt).encode())]


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    record: Record
    headers: Headers


class KafkaNotifier:
    """Serves one channel until `stop` is set; see the module docstring for the steps."""

    def __init__(self, conf: NotifierConfig, subscriptions: Subscriptions, guard: Guard, sender: Sender, *,
                 policy: RetryPolicy | None = None, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random) -> None:
        self.conf = conf
        self._subscriptions = subscriptions
        self._guard = guard
        self._sender = sender
        self._policy = RetryPolicy() if policy is None else policy
        self._clock = clock
        self._rng = rng
        self._slots = asyncio.Semaphore(conf.concurrency)
        self._producer = AIOKafkaProducer(bootstrap_servers=conf.bootstrap, acks="all", enable_idempotence=True,
                                          linger_ms=2, client_id=f"{conf.group}-requeue")
        self.sent = 0
        self.last_poll = 0.0

    def _consumer(self, topic: str, group: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.conf.bootstrap, group_id=group,
                                    client_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                                    session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
                                    max_poll_interval_ms=300_000)
        consumer.subscribe([topic])
        return consumer

    async def run(self, stop: asyncio.Event) -> None:
        main = self._consumer(self.conf.topic, self.conf.group)
        retry = self._consumer(self.conf.retry_topic, f"{self.conf.group}-retry")
        await self._producer.start()
        try:
            await main.start()
            await retry.start()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._loop(main, stop, delayed=False))
                tasks.create_task(self._loop(retry, stop, delayed=True))
        finally:
            await retry.stop()
            await main.stop()
            await self._producer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer, stop: asyncio.Event, *, delayed: bool) -> None:
        while not stop.is_set():
            self.last_poll = time.time()
            batches = await consumer.getmany(timeout_ms=500, max_records=self.conf.max_records)
            if batches:
                await asyncio.gather(*(self._partition(consumer, tp, records, delayed=delayed)
                                       for tp, records in batches.items()))

    async def _partition(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Record], *,
                         delayed: bool) -> None:
        """Process one partition's records, re-queue what must wait, then commit; on trouble, read them again."""
        due = records
        if delayed:
            due = self._due(consumer, tp, records)
        try:
            outgoing = await self._handle_all(due)
            await self._produce(outgoing)
        except Exception:  # Redis or Kafka trouble: nothing committed, the records are read again
            log.exception("delivering from %s failed; reading again", tp, extra={"topic": tp.topic})
            if due:
                consumer.seek(tp, due[0].offset)
            await asyncio.sleep(1.0)
            return
        if due:
            await consumer.commit({tp: due[-1].offset + 1})

    def _due(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Record]) -> list[Record]:
        """The records whose not-before time has come; the partition pauses until the first one that has not."""
        now = self._clock()
        for index, record in enumerate(records):
            try:
                not_before = retry_header(record, "vigie-not-before", float)
            except EnvelopeError:
                not_before = 0.0  # due now: handle() dead-letters it with the reason
            if not_before > now:
                consumer.seek(tp, record.offset)
                consumer.pause(tp)
                asyncio.get_running_loop().call_later(not_before - now, _resume, consumer, tp)
                return records[:index]
        return records

    async def _handle_all(self, records: list[Record]) -> list[Outgoing]:
        """Per subscription (the record key) in order; subscriptions in parallel."""
        queues: dict[bytes | None, list[Record]] = {}
        for record in records:
            queues.setdefault(record.key, []).append(record)
        results = await asyncio.gather(*(self._queue(queue) for queue in queues.values()))
        return [out for result in results for out in result]

    async def _queue(self, queue: list[Record]) -> list[Outgoing]:
        out: list[Outgoing] = []
        async with self._slots:
            for record in queue:
                out += await self.handle(record)
        return out

    async def handle(self, record: Record) -> list[Outgoing]:
        """One delivery: what to publish for it (nothing, a re-queue, or a dead letter)."""
        try:
            attempt = int(retry_header(record, "vigie-attempt", int))
            retry_header(record, "vigie-not-before", float)
            delivery = read(decode(record.value), DELIVERY, delivery_from_dict)
        except EnvelopeError as exc:
            return [Outgoing(self.conf.dlq(record.topic), record, dead_letter_headers(record, str(exc)))]
        subscription = await self._subscriptions.get(delivery.subscription.id)
        if subscription is None:
            log.info("subscription %s is gone: delivery %s dropped", delivery.subscription.id, delivery.key,
                     extra=_context(delivery))
            return []
        return await self._deliver(Delivery(delivery.key, delivery.change, subscription), record, attempt)

    async def _deliver(self, delivery: Delivery, record: Record, attempt: int) -> list[Outgoing]:
        claim = await self._guard.claim(delivery.key)
        if claim is Claim.ALREADY_DONE:
            return []
        if claim is Claim.BUSY:
            return [self._requeue(record, attempt, self.conf.busy_delay_s, "claimed by another notifier")]
        wait = await self._admit(delivery)
        if wait > 0:
            await self._guard.release(delivery.key)
            return [self._requeue(record, attempt, wait, "rate limited")]
        try:
            await self._sender.send(delivery)
        except Exception as exc:  # DeliveryError says what to do; anything else is retried, with a traceback
            await self._guard.release(delivery.key)
            return [self._failed(delivery, record, attempt + 1, _as_delivery_error(exc, delivery))]
        await self._guard.done(delivery.key)
        self.sent += 1
        log.info("delivered %s to %s", delivery.key, mask(delivery.subscription.destination),
                 extra=_context(delivery))
        return []

    async def _admit(self, delivery: Delivery) -> float:
        """Wait inline for a rate-limit slot when it comes soon; else the seconds to come back after."""
        subscription = delivery.subscription
        while True:
            wait = await self._guard.acquire_for(subscription.channel, subscription.destination)
            if wait <= 0 or wait > self.conf.inline_wait_s:
                return max(wait, 0.0)
            await asyncio.sleep(wait)

    def _failed(self, delivery: Delivery, record: Record, attempt: int, error: DeliveryError) -> Outgoing:
        reason, where = str(error), mask(delivery.subscription.destination)
        if not error.retriable or self._policy.exhausted(attempt):
            log.warning("dead letter %s to %s after %d attempt(s): %s", delivery.key, where, attempt, reason,
                        extra=_context(delivery))
            dlq = self.conf.dlq(self.conf.topic)
            return Outgoing(dlq, record, dead_letter_headers(record, reason, attempt))
        delay = self._policy.next_delay(attempt, error.retry_after, spread=self._rng())
        log.info("attempt %d of %s to %s failed, retry in %.1fs: %s", attempt, delivery.key, where, delay, reason,
                 extra=_context(delivery))
        return self._requeue(record, attempt, delay, reason)

    def _requeue(self, record: Record, attempt: int, delay: float, reason: str) -> Outgoing:
        headers = [("vigie-attempt", str(attempt).encode()),
                   ("vigie-not-before", f"{self._clock() + delay:.3f}".encode()),
                   ("vigie-last-error", reason.encode())]
        return Outgoing(self.conf.retry_topic, record, headers)

    async def _produce(self, outgoing: list[Outgoing]) -> None:
        futures = [await self._producer.send(o.topic, o.record.value, key=o.record.key, headers=o.headers)
                   for o in outgoing]
        for future in futures:
            await future


def _resume(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
    if tp in consumer.assignment():
        consumer.resume(tp)


def _as_delivery_error(exc: Exception, delivery: Delivery) -> DeliveryError:
    if isinstance(exc, DeliveryError):
        return exc
    log.error("unexpected error delivering %s", delivery.key, exc_info=exc, extra=_context(delivery))
    return DeliveryError(f"{type(exc).__name__}: {exc}", retriable=True)


def _context(delivery: Delivery) -> dict[str, Any]:
    return {"change_id": delivery.change.id, "subscription_id": delivery.subscription.id,
            "channel": delivery.subscription.channel, "delivery_key": delivery.key}
