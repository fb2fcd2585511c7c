"""Vigie's Kafka topology in one place: topic names, their partitions and configs, header names, dead letters.

Pure names and functions, no client: every role (producer, stream workers, notifiers, subscriptions publisher)
reads here what it writes and reads; streams/bus/kafka.py `ensure_topics` creates what `topic_specs` declares.
Every name takes an optional prefix, so several deployments (or test runs) can share one cluster:

    records.<dataset>            producer → diff agent     key = Profile.partition_key; an end marker per partition
    changes                      diff agent → match agent  key = record key (held changes: header vigie-held)
    gate                         diff agent → gate         mass-change candidates, partition ends; 1 partition
    deliveries.<channel>         match agent → notifier    key = subscription id (order per subscription)
    deliveries.<channel>.retry   notifier → notifier       delayed re-queue (attempt and not-before in headers)
    subscriptions                store → match agents      compacted; key = subscription id, tombstone = delete
    dlq.<topic>                  any consumer              original key and bytes, the reason in headers; 1 partition
    <app id>-<table>-changelog   faust tables              named by faust, compacted, as many partitions as the tables

Headers (names and bytes are the wire format: existing deployments read them):

    content-type         application/cloudevents+json on every envelope (core.codec.KAFKA_HEADERS); kept by dead
                         letters and re-queues of a message that had it
    vigie-held           <event id>: a change of a held mass rewrite, for the view, not for matching
    vigie-attempt        attempts made so far (re-queues, a notifier's dead letters)
    vigie-not-before     Unix time (seconds, 3 decimals) before which a re-queued delivery must not be sent
    vigie-last-error     why the last attempt failed (re-queues)
    vigie-dlq-reason     one line: what is wrong (EnvelopeError text, the delivery's last error, the quarantine reason)
    vigie-dlq-topic      where the message was read
    vigie-dlq-partition  its partition
    vigie-dlq-offset     its offset
    vigie-dlq-source     the source URL of a quarantined row (`dlq.records.<dataset>`, whose value is the raw row)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

CONTENT_TYPE_HEADER = "content-type"
HELD = "vigie-held"
ATTEMPT = "vigie-attempt"
NOT_BEFORE = "vigie-not-before"
LAST_ERROR = "vigie-last-error"
DLQ_REASON = "vigie-dlq-reason"
DLQ_TOPIC = "vigie-dlq-topic"
DLQ_PARTITION = "vigie-dlq-partition"
DLQ_OFFSET = "vigie-dlq-offset"
DLQ_SOURCE = "vigie-dlq-source"

COMPACTED: Mapping[str, str] = {"cleanup.policy": "compact"}
GATE_PARTITIONS = 1  # one gate sees every candidate of a snapshot
DLQ_PARTITIONS = 1
TOPIC_ALREADY_EXISTS = 36  # Kafka's error code, answered by CreateTopics for a topic that exists

Headers = tuple[tuple[str, bytes], ...]
ReadHeaders = Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None  # aiokafka's pairs, or faust's mapping


@dataclass(frozen=True, slots=True)
class Topics:
    """The names of Vigie's topics, under an optional prefix: one method per family."""

    prefix: str = ""

    def records(self, dataset: str) -> str:
        return f"{self.prefix}records.{dataset}"

    @property
    def changes(self) -> str:
        return f"{self.prefix}changes"

    @property
    def gate(self) -> str:
        """Mass-change candidates and partition ends, one partition (streams/kafka_gate.py)."""
        return f"{self.prefix}gate"

    @property
    def subscriptions(self) -> str:
        return f"{self.prefix}subscriptions"

    def deliveries(self, channel: str) -> str:
        return f"{self.prefix}deliveries.{channel}"

    def retry(self, channel: str) -> str:
        return f"{self.deliveries(channel)}.retry"

    def dlq(self, topic: str) -> str:
        """`dlq.<topic>`: the dead-letter topic of `topic` (given with or without the prefix)."""
        return f"{self.prefix}dlq.{topic.removeprefix(self.prefix)}"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)


def subscriptions_spec(name: str, partitions: int) -> TopicSpec:
    """The `subscriptions` topic (`name`: Topics.subscriptions): compacted, the latest write per subscription kept."""
    return TopicSpec(name, partitions, COMPACTED)


def topic_specs(topics: Topics, *, datasets: Iterable[str], channels: Iterable[str],
                partitions: int) -> list[TopicSpec]:
    """Every topic the roles use, with its dead-letter topic: the table `ensure_topics` creates from."""
    main = [TopicSpec(topics.records(d), partitions) for d in datasets]
    main += [TopicSpec(topics.changes, partitions), subscriptions_spec(topics.subscriptions, partitions),
             TopicSpec(topics.gate, GATE_PARTITIONS)]
    for channel in channels:
        main += [TopicSpec(topics.deliveries(channel), partitions), TopicSpec(topics.retry(channel), partitions)]
    return main + [TopicSpec(topics.dlq(spec.name), DLQ_PARTITIONS) for spec in main]


def changelog_specs(names: Iterable[str], partitions: int) -> list[TopicSpec]:
    """The faust tables' changelog topics (faust names them): compacted, as many partitions as the tables."""
    return [TopicSpec(name, partitions, COMPACTED) for name in names]


class Consumed(Protocol):
    """Where a consumed message was read (aiokafka ConsumerRecord, faust Message): what a dead letter names."""

    topic: str
    partition: int
    offset: int


def header(headers: ReadHeaders, name: str) -> str | None:
    """The last value of header `name`, decoded, or None."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    found = [value for key, value in pairs if key == name]
    return found[-1].decode() if found else None


def headers_of(message: object) -> ReadHeaders:
    """A consumed message's headers (aiokafka or faust), None when it has none."""
    headers: ReadHeaders = getattr(message, "headers", None)
    return headers


def content_type(message: object) -> Headers:
    """The content-type header of a consumed message, as headers to copy onto its dead letter or re-queue; ()
    when it had none."""
    headers = headers_of(message)
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return tuple((key, value) for key, value in pairs
                 if key == CONTENT_TYPE_HEADER and isinstance(value, bytes))[-1:]


def is_held(message: object) -> bool:
    """Whether a consumed `changes` message is a held change (the view applies it, matching skips it)."""
    return header(headers_of(message), HELD) is not None


def held_headers(event_id: str) -> Headers:
    return ((HELD, event_id.encode()),)


def dead_letter_headers(reason: str, *, read_from: Consumed | None = None, source: str | None = None,
                        attempt: int | None = None) -> Headers:
    """Why a message is dead-lettered: the reason, where it was read (a consumed message), the source it came
    from (a quarantined row), the attempts made (a delivery), in that order."""
    headers: list[tuple[str, bytes]] = [(DLQ_REASON, reason.encode())]
    if read_from is not None:
        headers += [(DLQ_TOPIC, read_from.topic.encode()), (DLQ_PARTITION, str(read_from.partition).encode()),
                    (DLQ_OFFSET, str(read_from.offset).encode())]
    if source is not None:
        headers.append((DLQ_SOURCE, source.encode()))
    if attempt is not None:
        headers.append((ATTEMPT, str(attempt).encode()))
    return tuple(headers)


def retry_headers(attempt: int, *, not_before: float | None = None, last_error: str | None = None) -> Headers:
    """A re-queued delivery's headers: the attempts made, the Unix time it is due, why the last one failed."""
    headers: list[tuple[str, bytes]] = [(ATTEMPT, str(attempt).encode())]
    if not_before is not None:
        headers.append((NOT_BEFORE, f"{not_before:.3f}".encode()))
    if last_error is not None:
        headers.append((LAST_ERROR, last_error.encode()))
    return tuple(headers)
