"""Vigie's bus on Apache Kafka: the producer the stream agents write with, their messages, dead letters, topic creation.

Topic names, partitions, configs and header names are core/topology.py's (one place for every role). Values are
`core.codec.Envelope` JSON, in the CloudEvents Kafka binding's structured mode: `cloudevent()` makes the message,
with the header `content-type: application/cloudevents+json`. Dead letters keep the original value untouched (and
its content-type header, when it had one) and say why in headers (`core.topology.dead_letter_headers`).

Errors are aiokafka's (`KafkaError`, whose `retriable` says whether trying again may help);
`send_all` retries retriable ones until its deadline, so a broker restart is waited out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from core import topology
from core.codec import CHANGE, DELIVERY, KAFKA_HEADERS, Envelope, change_to_dict, delivery_to_dict
from core.model import Change, Delivery
from core.topology import TOPIC_ALREADY_EXISTS, Headers, Topics, TopicSpec, content_type, dead_letter_headers

log = logging.getLogger(__name__)

STREAMS_SOURCE = "/vigie/streams"
UNPREFIXED = Topics()


def bootstrap_of(url: str) -> str:
    """`kafka://host:9092[,host2:9092]` → `host:9092[,host2:9092]`; ValueError for anything else."""
    scheme, sep, rest = url.partition("://")
    if sep != "://" or scheme != "kafka" or not rest.strip("/"):
        raise ValueError(f"not a Kafka bus URL: {url!r} (expected kafka://host:9092)")
    return ",".join(part.strip().strip("/") for part in rest.split(",") if part.strip())


class Consumed(topology.Consumed, Protocol):
    """What a consumed message must offer to be dead-lettered (aiokafka ConsumerRecord, faust Message)."""

    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    headers: Headers = ()


def cloudevent(topic: str, envelope: Envelope, *, key: bytes | None = None, partition: int | None = None) -> Outgoing:
    """The message carrying `envelope` (structured mode: the `content-type` header says it is a CloudEvent)."""
    return Outgoing(topic, envelope.encode(), key=key, partition=partition, headers=KAFKA_HEADERS)


def change_message(topics: Topics, change: Change, *, headers: Headers = KAFKA_HEADERS) -> Outgoing:
    """A change on `changes`, keyed by record key."""
    envelope = Envelope(change.id, CHANGE, STREAMS_SOURCE, change.key, change.detected_at, change_to_dict(change))
    return Outgoing(topics.changes, envelope.encode(), key=change.key.encode(), headers=headers)


def delivery_message(topics: Topics, delivery: Delivery) -> Outgoing:
    """A delivery on `deliveries.<channel>`, keyed by subscription id (order per subscription)."""
    envelope = Envelope(delivery.key, DELIVERY, STREAMS_SOURCE, delivery.subscription.id,
                        delivery.change.detected_at, delivery_to_dict(delivery))
    return cloudevent(topics.deliveries(delivery.subscription.channel), envelope,
                      key=delivery.subscription.id.encode())


class KafkaBus:
    """One idempotent producer (`acks=all`): `send_all` returns once every message is acknowledged."""

    def __init__(self, bootstrap: str, *, topics: Topics = UNPREFIXED, client_id: str = "vigie",
                 linger_ms: int = 0, deadline_s: float = 120.0) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self._deadline_s = deadline_s
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all",
                                          enable_idempotence=True, linger_ms=linger_ms,
                                          max_batch_size=256 * 1024, request_timeout_ms=30_000)
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._producer.stop()

    async def partitions(self, topic: str) -> list[int]:
        found = await self._producer.partitions_for(topic)
        return sorted(found)

    async def send_all(self, messages: Iterable[Outgoing]) -> list[Any]:
        """Send `messages` and wait for every acknowledgement; retriable failures are sent again until the deadline.

        Returns each message's RecordMetadata (topic, partition, offset), in order. A message may be written twice
        after a retry: consumers dedupe on ids.
        """
        pending = list(enumerate(messages))
        sent: list[Any] = [None] * len(pending)
        deadline = time.monotonic() + self._deadline_s
        while pending:
            failed = await self._send_once(pending, sent)
            if not failed:
                break
            error = failed[0][1]
            if not getattr(error, "retriable", True) or time.monotonic() >= deadline:
                raise error
            log.warning("%d message(s) to %s not acknowledged (%r); sending again", len(failed),
                        failed[0][0][1].topic, error, extra={"topic": failed[0][0][1].topic})
            await asyncio.sleep(0.5)
            pending = [item for item, _ in failed]
        return sent

    async def _send_once(self, items: Sequence[tuple[int, Outgoing]],
                         sent: list[Any]) -> list[tuple[tuple[int, Outgoing], KafkaError]]:
        futures: list[asyncio.Future[Any]] = []
        failed: list[tuple[tuple[int, Outgoing], KafkaError]] = []
        for item in items:
            message = item[1]
            try:
                futures.append(await self._producer.send(
                    message.topic, message.value, key=message.key, partition=message.partition,
                    headers=list(message.headers) or None))
            except KafkaError as exc:
                failed.append((item, exc))
                futures.append(_done())
        results = await asyncio.gather(*futures, return_exceptions=True)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, KafkaError):
                failed.append((item, result))
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                sent[item[0]] = result
        return failed

    def dead_letter(self, message: Consumed, reason: str) -> Outgoing:
        """The dead-letter message for `message` (send it with `send_all`)."""
        log.warning("dead letter from %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason,
                    extra={"topic": message.topic, "partition": message.partition, "offset": message.offset})
        return Outgoing(self.topics.dlq(message.topic), message.value, key=message.key,
                        headers=content_type(message) + dead_letter_headers(reason, read_from=message))


def _done() -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], *, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (replication 1, each spec's partitions and configs); the names
    created. Every role and the subscription publisher create their topics here (core/topology.py declares them).
    An existing topic a spec wants compacted and that is not gets a warning: what it deletes would be lost to
    retention."""
    wanted = {spec.name: spec for spec in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for name, spec in wanted.items() if name not in existing]
        await _check_compacted(admin, [spec for name, spec in wanted.items() if name in existing])
        if not missing:
            return []
        response = await admin.create_topics([
            NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.config)) for spec in missing])
        created = _created(response.to_object())
        await _wait_for_leaders(admin, created, timeout_s)
    finally:
        await admin.close()
    log.info("created topics %s", ", ".join(created), extra={"topics": created})
    return created


async def _check_compacted(admin: AIOKafkaAdminClient, existing: Sequence[TopicSpec]) -> None:
    compacted = [spec.name for spec in existing if "compact" in dict(spec.config).get("cleanup.policy", "")]
    if not compacted:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, {"cleanup.policy": None}) for name in compacted]
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            policy = next((e["config_value"] for e in resource["config_entries"]
                           if e["config_names"] == "cleanup.policy"), None)
            if policy is None or "compact" not in policy:
                name = resource["resource_name"]
                log.warning("topic %s has cleanup.policy=%s, not compact: deleted history will be lost to retention",
                            name, policy, extra={"topic": name})


def _created(response: dict[str, Any]) -> list[str]:
    created = []
    for topic in response.get("topics") or response.get("topic_errors") or []:
        code = int(topic["error_code"])
        if code == 0:
            created.append(topic["topic"] if "topic" in topic else topic["name"])
        elif code != TOPIC_ALREADY_EXISTS:
            raise KafkaError(f"cannot create topic {topic.get('topic') or topic.get('name')}: error {code} "
                             f"{topic.get('error_message') or ''}".rstrip())
    return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Poll the metadata until every partition of `names` has a leader (bounded by `timeout_s`)."""
    async with asyncio.timeout(timeout_s):
        while names:
            described = await admin.describe_topics(names)
            if all(_led(topic) for topic in described):
                return
            await asyncio.sleep(0.05)


def _led(topic: Mapping[str, Any]) -> bool:
    partitions = topic.get("partitions") or []
    return topic.get("error_code") == 0 and bool(partitions) and all(
        p.get("error_code") == 0 and p.get("leader", -1) >= 0 for p in partitions)


async def start_offsets(bootstrap: str, group: str,
                        partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Where consumer group `group` resumes each partition: its committed offset, else the start of the log."""
    tps = [TopicPartition(topic, partition) for topic, partition in partitions]
    if not tps:
        return {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        beginning = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
        await admin.close()
    found = {tp: committed[tp].offset for tp in tps if tp in committed and committed[tp].offset >= 0}
    return {(tp.topic, tp.partition): max(found.get(tp, 0), beginning[tp]) for tp in tps}
