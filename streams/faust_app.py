"""The streams role on Kafka: a faust-streaming app with two agents, diff and match.

    records.<dataset> ──diff agent──▶ changes ──match agent──▶ deliveries.<channel>
       (Tables: records, groups)        (subscription index from the compacted `subscriptions` topic)

Both agents take events in batches and, for each batch, publish their output with the worker's idempotent
producer and wait for every acknowledgement *before* the diff tables are written (and before faust may commit
the batch's offsets). A crash can therefore repeat a change or a delivery, with the same id and idempotency key,
but never lose one. Workers started with the same app id share the partitions (one consumer group); the tables
are changelog-backed (`rocksdb://` in production, `memory://` in tests) and rebuilt on the new owner.

A message that cannot be read (not JSON, wrong type, missing fields) is dead-lettered to `dlq.<topic>` with the
reason, and the batch goes on.

faust reads the changelog partition of a table write from the *current event*; a batch holds events of several
partitions, so each staged write is applied with its own event made current (`_as_current`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.streams import _current_event

from core.codec import (
    CHANGE,
    DELIVERY,
    RECORD,
    SNAPSHOT_END,
    Envelope,
    change_from_dict,
    change_to_dict,
    decode,
    delivery_to_dict,
    read,
)
from core.errors import EnvelopeError
from core.model import Change, Delivery
from streams.bus.kafka import KafkaBus, Outgoing
from streams.kafka_diff import PartitionDiff, RecordMessage, SnapshotEnd
from streams.kafka_index import SubscriptionFeed

log = logging.getLogger(__name__)

ENVELOPE_SOURCE = "/vigie/streams"
_DELETED = object()


@dataclass(frozen=True, slots=True)
class StreamsConfig:
    app_id: str
    bootstrap: str
    datasets: Sequence[str]
    store: str = "memory://"
    partitions: int = 4
    data_dir: str = "vigie-data"
    batch: int = 1000
    within: float = 0.1
    session_timeout: float = 10.0
    commit_interval: float = 1.0
    standby_replicas: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _as_current(event: Any) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class Staged:
    """KV over a faust Table whose writes wait in memory until `commit()`, each remembering its event."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.event: Any = None
        self._writes: dict[str, tuple[Any, Any]] = {}

    def get(self, key: str) -> Any:
        if key in self._writes:
            value = self._writes[key][1]
            return None if value is _DELETED else value
        return self.table.get(key)

    def put(self, key: str, value: Any) -> None:
        self._writes[key] = (self.event, value)

    def delete(self, key: str) -> None:
        self._writes[key] = (self.event, _DELETED)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        seen = set()
        for key in list(self.table.keys()):
            if key.startswith(prefix):
                seen.add(key)
                current = self.get(key)
                if current is not None:
                    yield key, current
        for key, (_, value) in list(self._writes.items()):
            if key.startswith(prefix) and key not in seen and value is not _DELETED:
                yield key, value

    def commit(self) -> int:
        writes, self._writes = self._writes, {}
        for key, (event, value) in writes.items():
            with _as_current(event):
                if value is _DELETED:
                    self.table.pop(key, None)
                else:
                    self.table[key] = value
        return len(writes)


def change_envelope(change: Change) -> Envelope:
    return Envelope(change.id, CHANGE, ENVELOPE_SOURCE, change.key, change.detected_at, change_to_dict(change))


def delivery_envelope(delivery: Delivery) -> Envelope:
    return Envelope(delivery.key, DELIVERY, ENVELOPE_SOURCE, delivery.subscription.id, delivery.change.detected_at,
                    delivery_to_dict(delivery))


class Streams:
    """The app, its agents and the resources they share; `run()` serves until stopped by a signal."""

    def __init__(self, conf: StreamsConfig, bus: KafkaBus, *, heartbeat: Path | None = None) -> None:
        self.conf = conf
        self.bus = bus
        self.feed = SubscriptionFeed(bus, client_id=f"{conf.app_id}-index")
        self.heartbeat = heartbeat
        self.app = self._app()
        self.records = self._table("records", "last version of every record key, per source")
        self.groups = self._table("groups", "record keys of every entity, per source")
        self.processed = 0
        self._wire()

    def _app(self) -> faust.App:
        c = self.conf
        brokers = ";".join(f"kafka://{host}" for host in c.bootstrap.split(","))
        return faust.App(
            c.app_id, broker=brokers, store=c.store, topic_partitions=c.partitions, datadir=c.data_dir,
            web_enabled=False, autodiscover=False, processing_guarantee="at_least_once",
            broker_session_timeout=c.session_timeout, broker_heartbeat_interval=max(c.session_timeout / 5, 0.5),
            broker_commit_interval=c.commit_interval, table_standby_replicas=c.standby_replicas,
            consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw",
            producer_acks=-1, **c.extra)

    def _table(self, name: str, help_text: str) -> Any:
        # key_type str and no value_type: faust serializes both as JSON on the changelog
        return self.app.Table(name, partitions=self.conf.partitions, key_type=str, help=help_text)

    def _wire(self) -> None:
        topics = self.bus.topics
        source = self.app.topic(*(topics.records(d) for d in self.conf.datasets), key_type=bytes, value_type=bytes,
                                partitions=self.conf.partitions)
        changes = self.app.topic(topics.changes, key_type=bytes, value_type=bytes, partitions=self.conf.partitions)
        self.app.agent(source, name="diff")(self._diff_agent)
        self.app.agent(changes, name="match")(self._match_agent)
        self.app.task(self._run_feed)
        self.app.timer(5.0, name="heartbeat")(self._beat)

    async def _diff_agent(self, stream: Any) -> None:
        async for events in stream.take_events(self.conf.batch, within=self.conf.within):
            await self.diff_batch(events)

    async def _match_agent(self, stream: Any) -> None:
        await self.feed.ready.wait()
        async for events in stream.take_events(self.conf.batch, within=self.conf.within):
            await self.match_batch(events)

    async def _run_feed(self) -> None:
        await self.bus.start()
        while True:
            try:
                await self.feed.run()
            except Exception:  # broker trouble: read the topic again rather than crash the worker
                log.exception("subscription feed failed; reading %s again", self.feed.topic)
                await asyncio.sleep(2.0)

    async def _beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.write_text(f"{time.time():.3f} {self.processed}\n", encoding="utf-8")

    async def diff_batch(self, events: Sequence[Any]) -> None:
        records, groups = Staged(self.records), Staged(self.groups)
        diff = PartitionDiff(records, groups)
        out: list[Outgoing] = []
        for event in events:
            records.event = groups.event = event
            out += self._guarded(event.message, lambda m: self._diff_one(diff, m))
        await self.bus.send_all(out)
        records.commit()
        groups.commit()
        self.processed += len(events)

    def _diff_one(self, diff: PartitionDiff, message: Any) -> list[Outgoing]:
        envelope = decode(message.value)
        if envelope.type == RECORD:
            change = diff.on_record(RecordMessage.from_data(envelope.data, envelope.time), message.partition)
            changes = [] if change is None else [change]
        elif envelope.type == SNAPSHOT_END:
            changes = diff.on_end(SnapshotEnd.from_data(envelope.data, envelope.time), message.partition)
        else:
            raise EnvelopeError(f"expected type {RECORD!r} or {SNAPSHOT_END!r}, got {envelope.type!r}")
        return [Outgoing(self.bus.topics.changes, change_envelope(c).encode(), key=c.key.encode()) for c in changes]

    async def match_batch(self, events: Sequence[Any]) -> None:
        out: list[Outgoing] = []
        for event in events:
            out += self._guarded(event.message, self._match_one)
        await self.bus.send_all(out)
        self.processed += len(events)

    def _match_one(self, message: Any) -> list[Outgoing]:
        change = read(decode(message.value), CHANGE, change_from_dict)
        deliveries = [Delivery.of(change, s) for s in self.feed.index.match(change)]
        return [Outgoing(self.bus.topics.deliveries(d.subscription.channel), delivery_envelope(d).encode(),
                         key=d.subscription.id.encode()) for d in deliveries]

    def _guarded(self, message: Any, handle: Callable[[Any], list[Outgoing]]) -> list[Outgoing]:
        """`handle(message)`, or the message's dead letter when it cannot be read or processed."""
        try:
            return handle(message)
        except EnvelopeError as exc:
            return [self.bus.dead_letter(message, str(exc))]
        except Exception as exc:  # a message no code path expects must not stop the partition
            log.exception("cannot process %s[%d]@%d", message.topic, message.partition, message.offset,
                          extra={"topic": message.topic, "partition": message.partition})
            return [self.bus.dead_letter(message, f"processing failed: {type(exc).__name__}: {exc}")]

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM, as `faust worker` would, without faust's command line."""
        worker = faust.Worker(self.app, override_logging=False, quiet=True, redirect_stdouts=False,
                              loop=asyncio.get_running_loop())
        await self.bus.start()
        try:
            await worker.start()  # returns once the worker stops (a signal, or a crash)
        finally:
            await worker.stop()
            await self.bus.stop()
        if self.app.crash_reason is not None:
            raise SystemExit(f"stream worker crashed: {self.app.crash_reason!r}")

