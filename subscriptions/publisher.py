"""Subscriptions on the bus: the compacted `subscriptions` topic every stream worker rebuilds its index from.

One message per write, keyed by subscription id so compaction keeps the latest:

    key    subscription id (UTF-8)
    value  Envelope(type=org.vigie.subscription, subject=id, data=subscription_to_dict(include_secret=False))
           or None (a tombstone) when the subscription was deleted
    header content-type: application/cloudevents+json (not on tombstones)

Secrets never go on the bus: no signing secret, and the destination only as its scheme (`slack://***`: a token, a
webhook path may be secret); notifiers read the whole subscription from the store by id.

Errors: core.errors.PublishError, the write did not reach the topic; `retriable` says whether trying again
may help.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from core.codec import KAFKA_HEADERS, SUBSCRIPTION, Envelope, subscription_to_dict
from core.errors import PublishError
from core.model import Subscription
from core.topology import Topics, TopicSpec, subscriptions_spec

log = logging.getLogger(__name__)
T = TypeVar("T")

TOPIC = Topics().subscriptions
SOURCE = "/vigie/subscriptions"


class SubscriptionPublisher(Protocol):
    """Where subscription writes go after the store: `subscription` None publishes a deletion."""

    async def publish(self, subscription_id: str, subscription: Subscription | None) -> None: ...

    async def aclose(self) -> None: ...


def envelope_of(subscription: Subscription, *, at: datetime) -> Envelope:
    """The message value for a live subscription (secret left out)."""
    return Envelope(
        id=uuid.uuid4().hex, type=SUBSCRIPTION, source=SOURCE, subject=subscription.id, time=at,
        data=subscription_to_dict(subscription, include_secret=False),
    )


class KafkaSubscriptionPublisher:
    """SubscriptionPublisher on Kafka: idempotent producer, `acks=all`, the compacted topic ensured (`ensure`)
    before the first write.

    `start()` is optional: the first `publish` starts the producer.
    """

    def __init__(self, bootstrap: str, *, topic: str = TOPIC, partitions: int = 1,
                 ensure: Callable[[TopicSpec], Awaitable[object]] | None = None, timeout_s: float = 30.0) -> None:
        """`ensure` creates the topic if missing, before the first write (runtime passes the one topic-creation
        path, streams.bus.kafka.ensure_topics, which this package may not import); None: it exists."""
        self.bootstrap = bootstrap
        self.topic = topic
        self._spec = subscriptions_spec(topic, partitions)
        self._ensure = ensure
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._guarded(self._started())

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                if self._ensure is not None:
                    await self._ensure(self._spec)
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                            request_timeout_ms=int(self._timeout_s * 1000))
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def publish(self, subscription_id: str, subscription: Subscription | None) -> None:
        """Send one write and wait until every in-sync replica has it; PublishError otherwise."""
        producer = self._producer if self._producer is not None else await self._guarded(self._started())
        value = None if subscription is None else envelope_of(subscription, at=datetime.now(UTC)).encode()
        headers = None if value is None else list(KAFKA_HEADERS)  # a tombstone is no event
        await self._guarded(producer.send_and_wait(self.topic, key=subscription_id.encode(), value=value,
                                                   headers=headers))

    async def _guarded(self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await operation
        except TimeoutError as exc:
            raise PublishError(f"publishing to {self.topic} timed out after {self._timeout_s}s",
                               retriable=True) from exc
        except KafkaError as exc:
            raise PublishError(f"publishing to {self.topic} failed: {exc!r}",
                               retriable=bool(getattr(exc, "retriable", True))) from exc

    async def aclose(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
