"""The notifier role on Kafka: one consumer group per channel reads `deliveries.<channel>` and sends.

For each batch a consumer returns, in partition order (deliveries of one subscription share a partition, so their
order holds):

    1. read the envelopes              malformed → `dlq.<topic>` with the reason
    2. resolve the subscriptions       from the subscription store (the secret is never on the bus);
                                       deleted → dropped; but when the store has lost its data (Redis came
                                       back empty: StoreLost) the batch is held, read again until restored
    3. claim the idempotency keys      guard (Redis SET NX + TTL): done already → skip; busy elsewhere → re-queue
    4. take the destinations' slots    a short wait inline; a long one → re-queue
    5. send                            Channels.send, each subscription's in order, subscriptions in parallel;
                                       a merging channel's (Slack) by destination instead, one message per
                                       slot for up to its merge limit (notifiers/merging.py, as the embedded
                                       worker does); DeliveryError says whether to retry
    6. done / re-queue / dead letter   then commit the offsets

Steps 2, 3, 4 and the `done` marks of step 6 each take one Redis round trip for the whole batch (pipelines), not
one per delivery. A delivery whose send starts long after the batch's claims (`reclaim_after_s`, half the claim's
time to live) claims its key again first, so a slow batch cannot outlive its claims unnoticed.

A retriable failure does not block the partition: the delivery is re-queued to `deliveries.<channel>.retry` with
its attempt count and a not-before time in headers (`RetryPolicy` backoff, or the destination's Retry-After).
The retry consumer (its own group) pauses a partition whose head is not due yet and resumes it on time; a
not-before further away than any delay a notifier writes (a wrong clock, a forged header) is due at once, so
one message cannot hold its partition for days. After
the last attempt, or on a failure no retry can fix, the delivery goes to `dlq.deliveries.<channel>` with the
reason. Headers (core/topology.py): `vigie-attempt`, `vigie-not-before` and `vigie-last-error` on a re-queue,
`vigie-dlq-reason` (with where it was read, and the attempts made) on a dead letter.

Offsets are committed only after every re-queue and dead letter of the batch is acknowledged: a crash repeats
work, and the guard's claims (plus the receivers' dedupe on the idempotency key) absorb the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core.codec import DELIVERY, KAFKA_HEADERS, decode, delivery_from_dict, read
from core.errors import DeliveryError, EnvelopeError, StoreLost
from core.model import Delivery
from core.schedule import release_at
from core.topology import ATTEMPT, NOT_BEFORE, content_type, dead_letter_headers, retry_headers
from notifiers import mask
from notifiers.failing import EndpointWatch
from notifiers.guard import Claim
from notifiers.held import Held, HeldDeliveries, release_forever
from notifiers.kafka_messages import (
    Guard,
    NotifierConfig,
    Outgoing,
    Record,
    Subscriptions,
    commit,
    resume,
    retry_header,
)
from notifiers.merging import Sender, chunk_size, chunks, queue_key, send_chunk
from notifiers.worker import Observe, RetryPolicy

log = logging.getLogger(__name__)

__all__ = ["CLOCK_SKEW_S", "Guard", "KafkaNotifier", "NotifierConfig", "Outgoing", "Record", "Subscriptions",
           "retry_header"]

BUSY_REASON = "claimed by another notifier"
FETCH_MIN_BYTES = 64 * 1024
CLOCK_SKEW_S = 300.0
FETCH_WAIT_MS = 20


@dataclass(slots=True)
class _Job:
    """A claimed delivery of the batch: its record, the attempts made, the slot wait its destination gave."""

    record: Record
    attempt: int
    delivery: Delivery
    wait: float = 0.0


class KafkaNotifier:
    """Serves one channel until `stop` is set; see the module docstring for the steps."""

    def __init__(self, conf: NotifierConfig, subscriptions: Subscriptions, guard: Guard, sender: Sender, *,
                 policy: RetryPolicy | None = None, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random, held: HeldDeliveries | None = None,
                 endpoints: EndpointWatch | None = None, observe: Observe | None = None) -> None:
        self.conf = conf
        self._subscriptions = subscriptions
        self._guard = guard
        self._sender = sender
        self._policy = RetryPolicy() if policy is None else policy
        # the longest delay a notifier writes in a not-before header, plus room for clocks that disagree
        self.longest_wait_s = max(self._policy.max_delay, conf.busy_delay_s, conf.inline_wait_s) + CLOCK_SKEW_S
        self._clock = clock
        self._rng = rng
        self._held = held  # digests and quiet hours (core/schedule.py); None: every alert goes at once
        self._endpoints = endpoints  # failing for too long → disabled (notifiers/failing.py)
        self._observe = observe  # each delivery's outcome (runtime's metrics)
        self._slots = asyncio.Semaphore(conf.concurrency)
        self._producer = AIOKafkaProducer(bootstrap_servers=conf.bootstrap, acks="all", enable_idempotence=True,
                                          linger_ms=2, client_id=f"{conf.group}-requeue")
        self.sent = 0
        self.last_poll = 0.0
        self.consumers: dict[str, AIOKafkaConsumer] = {}  # by group, once running

    def _consumer(self, topic: str, group: str) -> AIOKafkaConsumer:
        # a fetch waits for FETCH_MIN_BYTES or FETCH_WAIT_MS: a few fetches a second for a trickle, not one a message
        consumer = AIOKafkaConsumer(bootstrap_servers=self.conf.bootstrap, group_id=group,
                                    client_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                                    session_timeout_ms=int(self.conf.session_timeout_s * 1000),
                                    heartbeat_interval_ms=int(self.conf.session_timeout_s * 200),
                                    max_poll_interval_ms=300_000, fetch_min_bytes=FETCH_MIN_BYTES,
                                    fetch_max_wait_ms=FETCH_WAIT_MS)
        consumer.subscribe([topic])
        self.consumers[group] = consumer  # runtime reads their lag (notifiers/kafka_lag.py)
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
                if self._held is not None:
                    tasks.create_task(release_forever(self._held, self._unhold, self._clock, stop))
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
        except StoreLost as exc:  # held, not dropped: read again until the store is restored
            log.error("%s", exc, extra={"topic": tp.topic, "collapse": True})  # noqa: TRY400 - no traceback to add
            await self._read_again(consumer, tp, due)
            return
        except Exception:  # Redis or Kafka trouble: nothing committed, the records are read again
            log.exception("delivering from %s failed; reading again", tp, extra={"topic": tp.topic})
            await self._read_again(consumer, tp, due)
            return
        if due:
            await commit(consumer, tp, due[-1].offset + 1)

    @staticmethod
    async def _read_again(consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Record]) -> None:
        if records and tp in consumer.assignment():  # else its new owner reads them from the last commit
            consumer.seek(tp, records[0].offset)
        await asyncio.sleep(1.0)

    def _due(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Record]) -> list[Record]:
        """The records whose not-before time has come; the partition pauses until the first one that has not."""
        now = self._clock()
        for index, record in enumerate(records):
            try:
                not_before = retry_header(record, NOT_BEFORE, float)
            except EnvelopeError:
                not_before = 0.0  # due now: _handle_all() dead-letters it with the reason
            if not_before > now + self.longest_wait_s:  # no notifier writes that: a wrong clock or a forged header
                log.warning("%s[%d]@%d is not due for %.0f s, longer than any retry delay (%.0f s): due now",
                            tp.topic, tp.partition, record.offset, not_before - now, self.longest_wait_s,
                            extra={"topic": tp.topic, "partition": tp.partition, "offset": record.offset})
                not_before = now
            if not_before > now:
                consumer.seek(tp, record.offset)
                consumer.pause(tp)
                asyncio.get_running_loop().call_later(not_before - now, resume, consumer, tp)
                return records[:index]
        return records

    async def _handle_all(self, records: list[Record]) -> list[Outgoing]:
        """The batch's deliveries: what to publish for them (re-queues, dead letters). Redis is asked once per step
        for the whole batch; sends go per subscription (the record key) in order, subscriptions in parallel."""
        out: list[Outgoing] = []
        read: list[tuple[Record, int, Delivery]] = []
        for record in records:
            try:
                read.append((record, *self._read(record)))
            except EnvelopeError as exc:
                dead = dead_letter_headers(str(exc), read_from=record)
                out.append(Outgoing(self.conf.dlq(record.topic), record, dead))
        if not read:
            return out
        live = await self._hold(await self._resolve(read))
        claimed_at = time.monotonic()
        claims = await self._guard.claim_many([job.delivery.key for job in live])
        claimed: list[_Job] = []
        for job, claim in zip(live, claims, strict=True):
            if claim is Claim.BUSY:
                out.append(self._requeue(job.record, job.attempt, self.conf.busy_delay_s, BUSY_REASON))
            elif claim is Claim.CLAIMED:
                claimed.append(job)  # ALREADY_DONE: sent before, nothing to do
        queues = await self._queues(claimed)
        sent: list[str] = []
        try:
            results = await asyncio.gather(*(self._queue(queue, claimed_at, sent) for queue in queues))
        finally:  # what was sent stays sent, even when another delivery of the batch hit trouble
            await self._guard.done_many(sent)
            if self._endpoints is not None and sent:
                done = set(sent)
                await self._endpoints.succeeded({j.delivery.subscription.destination for j in claimed
                                                 if j.delivery.key in done})
        return out + [outgoing for result in results for outgoing in result]

    async def _hold(self, live: list[_Job]) -> list[_Job]:
        """The jobs to send now; those a digest or quiet hours hold go to the held set until their time."""
        if self._held is None:
            return live
        now, due, held = datetime.fromtimestamp(self._clock(), UTC), [], []
        for job in live:
            until = release_at(job.delivery.subscription, job.delivery.change, now)
            if until is None:
                due.append(job)
            else:
                held.append((until.timestamp(), Held(job.record.key, job.record.value or b"", job.attempt)))
        await self._held.hold_many(held)
        return due

    async def _unhold(self, held: Held) -> None:
        """A held delivery that is due, to the retry topic (due at once there)."""
        headers = list(KAFKA_HEADERS + retry_headers(held.attempt))
        await self._producer.send_and_wait(self.conf.retry_topic, held.value, key=held.key, headers=headers)

    async def _queues(self, claimed: list[_Job]) -> list[list[Sequence[_Job]]]:
        """Claimed jobs by queue (`merging.queue_key`), each cut in messages (one per job, or up to the merge limit
        for a merging channel); every message's head holds the slot wait its destination gave."""
        queues: dict[str, list[_Job]] = {}
        for job in claimed:
            queues.setdefault(queue_key(self._sender, job.delivery), []).append(job)
        cut = [list(chunks(queue, chunk_size(self._sender, queue[0].delivery.subscription)))
               for queue in queues.values()]
        heads = [message[0].delivery.subscription for queue in cut for message in queue]
        waits = iter(await self._guard.acquire_many([(sub.channel, sub.destination) for sub in heads]))
        for queue in cut:
            for message in queue:
                message[0].wait = next(waits)
        return cut

    async def _resolve(self, read: list[tuple[Record, int, Delivery]]) -> list[_Job]:
        """The deliveries whose subscription still exists, with it (and its secret) from the store. The others were
        deleted: dropped. Unless the store lost its data: StoreLost, the batch is held."""
        found = await self._subscriptions.get_many({delivery.subscription.id for _, _, delivery in read})
        missing = sum(delivery.subscription.id not in found for _, _, delivery in read)
        if missing and await self._subscriptions.lost():
            raise StoreLost(f"({missing} delivery(ies) of this batch name subscriptions it no longer holds)")
        live: list[_Job] = []
        for record, attempt, delivery in read:
            subscription = found.get(delivery.subscription.id)
            if subscription is None:
                log.info("subscription %s is gone: delivery %s dropped", delivery.subscription.id, delivery.key,
                         extra=_context(delivery))
                continue
            if not subscription.active:  # paused, or disabled since it matched: nothing more goes out
                log.info("subscription %s is paused or disabled: delivery %s dropped", subscription.id, delivery.key,
                         extra=_context(delivery))
                continue
            live.append(_Job(record, attempt, Delivery(delivery.key, delivery.change, subscription)))
        return live

    async def _queue(self, queue: list[Sequence[_Job]], claimed_at: float, sent: list[str]) -> list[Outgoing]:
        out: list[Outgoing] = []
        async with self._slots:
            for message in queue:
                out += await self._deliver(message, claimed_at, sent)
        return out

    def _read(self, record: Record) -> tuple[int, Delivery]:
        """The attempts made so far and the delivery a record holds; EnvelopeError when it cannot be read."""
        attempt = int(retry_header(record, ATTEMPT, int))
        retry_header(record, NOT_BEFORE, float)
        return attempt, read(decode(record.value), DELIVERY, delivery_from_dict)

    async def _deliver(self, message: Sequence[_Job], claimed_at: float, sent: list[str]) -> list[Outgoing]:
        """Send one message (one claimed delivery, or a merging destination's several; their keys go to `sent`),
        or say what to publish instead, for each of its deliveries."""
        message, out = await self._reclaim(message, claimed_at)
        if not message:
            return out
        head = message[0]
        wait = await self._admit(head.delivery, head.wait)
        if wait > 0:
            await self._release(message)
            return out + [self._requeue(job.record, job.attempt, wait, "rate limited") for job in message]
        try:
            await send_chunk(self._sender, [job.delivery for job in message])
        except Exception as exc:  # DeliveryError says what to do; anything else is retried, with a traceback
            await self._release(message)
            error = _as_delivery_error(exc, head.delivery)
            if self._endpoints is not None:
                now = datetime.fromtimestamp(self._clock(), UTC)
                await self._endpoints.failed(head.delivery.subscription.destination, now, str(error))
            return out + [self._failed(job.delivery, job.record, job.attempt + 1, error) for job in message]
        sent += [job.delivery.key for job in message]
        self.sent += len(message)
        for job in message:
            self._told(job.delivery, "delivered")
        if log.isEnabledFor(logging.INFO):  # the masking and the context cost more than the check
            log.info("delivered %s to %s", ", ".join(job.delivery.key for job in message),
                     mask(head.delivery.subscription.destination), extra=_context(head.delivery))
        return out

    async def _reclaim(self, message: Sequence[_Job], claimed_at: float) -> tuple[Sequence[_Job], list[Outgoing]]:
        """A message whose send starts long after the batch's claims claims its keys again first: the jobs still
        ours, and the re-queues of those another notifier holds (those done already are dropped)."""
        if time.monotonic() - claimed_at <= self.conf.reclaim_after_s:
            return message, []
        claims = await self._guard.claim_many([job.delivery.key for job in message])  # extends ours
        mine = [job for job, claim in zip(message, claims, strict=True) if claim is Claim.CLAIMED]
        busy = [self._requeue(job.record, job.attempt, self.conf.busy_delay_s, BUSY_REASON)
                for job, claim in zip(message, claims, strict=True) if claim is Claim.BUSY]
        if mine and mine[0] is not message[0]:
            mine[0].wait = message[0].wait
        return mine, busy

    async def _release(self, message: Sequence[_Job]) -> None:
        for job in message:
            await self._guard.release(job.delivery.key)

    async def _admit(self, delivery: Delivery, wait: float) -> float:
        """Given the batch's first answer for a slot, wait inline when the next comes soon; else the seconds to
        come back after."""
        subscription = delivery.subscription
        while 0 < wait <= self.conf.inline_wait_s:
            await asyncio.sleep(wait)
            wait = await self._guard.acquire_for(subscription.channel, subscription.destination)
        return max(wait, 0.0)

    def _failed(self, delivery: Delivery, record: Record, attempt: int, error: DeliveryError) -> Outgoing:
        reason, where = str(error), mask(delivery.subscription.destination)
        if not error.retriable or self._policy.exhausted(attempt):
            log.warning("dead letter %s to %s after %d attempt(s): %s", delivery.key, where, attempt, reason,
                        extra=_context(delivery))
            self._told(delivery, "dead")
            return Outgoing(self.conf.dlq(self.conf.topic), record,
                            dead_letter_headers(reason, read_from=record, attempt=attempt))
        self._told(delivery, "retried")
        delay = self._policy.next_delay(attempt, error.retry_after, spread=self._rng())
        log.info("attempt %d of %s to %s failed, retry in %.1fs: %s", attempt, delivery.key, where, delay, reason,
                 extra=_context(delivery))
        return self._requeue(record, attempt, delay, reason)

    def _told(self, delivery: Delivery, outcome: str) -> None:
        if self._observe is not None:
            self._observe(delivery, outcome)

    def _requeue(self, record: Record, attempt: int, delay: float, reason: str) -> Outgoing:
        return Outgoing(self.conf.retry_topic, record,
                        retry_headers(attempt, not_before=self._clock() + delay, last_error=reason))

    async def _produce(self, outgoing: list[Outgoing]) -> None:
        futures = [await self._producer.send(o.topic, o.record.value, key=o.record.key,
                                             headers=list(content_type(o.record) + o.headers))
                   for o in outgoing]
        for future in futures:
            await future


def _as_delivery_error(exc: Exception, delivery: Delivery) -> DeliveryError:
    if isinstance(exc, DeliveryError):
        return exc
    log.error("unexpected error delivering %s", delivery.key, exc_info=exc, extra=_context(delivery))
    return DeliveryError(f"{type(exc).__name__}: {exc}", retriable=True)


def _context(delivery: Delivery) -> dict[str, Any]:
    return {"change_id": delivery.change.id, "subscription_id": delivery.subscription.id,
            "channel": delivery.subscription.channel, "delivery_key": delivery.key}
