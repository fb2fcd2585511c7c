"""The streams role on Kafka: a faust-streaming app with two agents, diff and match.

    records.<dataset> ──diff agent──▶ changes ──match agent──▶ deliveries.<channel>
       (Tables: records, groups)        (subscription index from the compacted `subscriptions` topic)

Both agents take events in batches and, for each batch, publish their output with the worker's idempotent
producer and wait for every acknowledgement *before* the diff tables are written (and before faust may commit
the batch's offsets). A crash can therefore repeat a change or a delivery, with the same id and idempotency key,
but never lose one. Workers started with the same app id share the partitions (one consumer group); the tables
are changelog-backed (`rocksdb://` in production, `memory://` in most tests) and rebuilt on the new owner.

A message that cannot be read (not JSON, wrong type, missing fields) is dead-lettered to `dlq.<topic>` with the
reason, and the batch goes on.

Offsets of the agents' topics are the worker's business, not faust's: they are read with `noack_take` from topics
with `acks=False`, processed in order and without holes whatever faust's consumer delivers around a rebalance,
and committed by the worker once processed (`kafka_positions.Positions`): faust's own commit bookkeeping was seen
to commit past unprocessed records across rebalances.

A batch writes its table state only inside the rebalance generation it started in. faust waits for its agents
before a rebalance only for acked events, and ours are not acked through faust, so the worker fences its own
batches: on revocation it stops admitting new ones, waits for those in flight (their changelog writes acknowledged,
before the new owner reads the changelog's end), and a batch still running after that wait gives up before
writing any state. After an assignment, the agents wait until faust has restored the tables from their changelogs:
a memory store replays its own writes since its last recovery, so the state is only whole once recovery ends.

Table writes are staged per batch (streams/faust_tables.py) and applied with their own event made current
(stores that shard by partition read it from there). The worker writes the changelogs itself, with its producer
and faust's serialization, and waits for every acknowledgement before the batch counts as processed
(`Staged.commit`), so offsets never get committed ahead of the state they produced.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP

from core.codec import CHANGE, RECORD, RECORD_REMOVED, SNAPSHOT_END, change_from_dict, decode, read
from core.errors import EnvelopeError
from core.model import Change, Delivery, Subscription
from core.profiles import profile_for
from core.storms import candidate
from core.topology import TopicSpec, changelog_specs, is_held
from streams.bus.kafka import (
    KafkaBus,
    Outgoing,
    change_message,
    delivery_message,
    ensure_topics,
    start_offsets,
)
from streams.faust_tables import Staged
from streams.faust_transport import App
from streams.kafka_diff import PartitionDiff, RecordMessage, Removal, SnapshotEnd
from streams.kafka_gate import candidate_message, end_message
from streams.kafka_index import SubscriptionFeed
from streams.kafka_positions import Positions

log = logging.getLogger(__name__)

STALL_S = 10.0
READY_POLL_S = 0.05


class Rebalanced(Exception):
    """A rebalance began while a batch ran: it must not write state for partitions that may have moved."""


@dataclass(frozen=True, slots=True)
class StreamsConfig:
    app_id: str
    bootstrap: str
    datasets: Sequence[str]
    store: str = "memory://"
    partitions: int = 4
    data_dir: str = "vigie-data"
    batch: int = 1000
    within: float = 0.05  # faust's take() hands a batch over at most this often (or at `batch` events): the
    # latency each agent adds when records trickle in; under load the batches fill up and leave at once
    session_timeout: float = 10.0
    commit_interval: float = 1.0
    standby_replicas: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


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
        self.positions = Positions(time.monotonic)
        self._committed: dict[tuple[str, int], int] = {}
        self._assigned = asyncio.Event()
        self._generation = 0  # bumped when partitions are revoked: a batch writes state only in its own
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._positioning: asyncio.Future[None] | None = None
        topics = bus.topics
        self._sources = {*(topics.records(d) for d in conf.datasets), topics.changes}
        self._wire()

    def _app(self) -> faust.App:
        c = self.conf
        brokers = ";".join(f"kafka://{host}" for host in c.bootstrap.split(","))
        return App(
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
        # acks=False: faust does not commit these topics; the worker commits what it processed (kafka_positions.py)
        source = self.app.topic(*(topics.records(d) for d in self.conf.datasets), key_type=bytes, value_type=bytes,
                                partitions=self.conf.partitions, acks=False)
        changes = self.app.topic(topics.changes, key_type=bytes, value_type=bytes, partitions=self.conf.partitions,
                                 acks=False)
        self.app.agent(source, name="diff")(self._diff_agent)
        self.app.agent(changes, name="match")(self._match_agent)
        self.app.task(self._run_feed)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self.app.timer(5.0, name="heartbeat")(self._beat)
        self.app.timer(self.conf.commit_interval, name="commit")(self._commit_timer)

    async def _diff_agent(self, stream: Any) -> None:
        async for events in stream.noack_take(self.conf.batch, within=self.conf.within):
            await self._batch(events, self.diff_batch)

    async def _match_agent(self, stream: Any) -> None:
        await self.feed.ready.wait()
        async for events in stream.noack_take(self.conf.batch, within=self.conf.within):
            await self._batch(events, self.match_batch)

    def _ready(self) -> bool:
        """The assignment's offsets are known and faust has restored its tables (`rebalancing` is set when a
        rebalance starts and cleared once recovery is over and the streams resume)."""
        return self._assigned.is_set() and not self.app.rebalancing

    async def _batch(self, events: Sequence[Any], process: Callable[[Sequence[Any], int], Awaitable[None]]) -> None:
        """Process the events that come next in their partition, then mark them committable (kafka_positions.py);
        only once the assignment's offsets are known and its tables restored, and inside one generation."""
        while not self._ready():  # noqa: ASYNC110 - faust has no event for "recovery over" that cannot be missed
            await asyncio.sleep(READY_POLL_S)
        generation = self._generation
        admitted = self.positions.admit(events)
        self._in_flight += 1
        self._idle.clear()
        try:
            if admitted.events:
                await process(admitted.events, generation)
        except Rebalanced:
            log.info("a rebalance began during a batch of %d event(s): their state is left to the new owner",
                     len(admitted.events))
            return
        except Exception:
            if generation == self._generation:
                await self._seek(self.positions.rewind(admitted.events))
            raise
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        if generation != self._generation:
            return  # finished after the fence gave up waiting: the new assignment reads these again
        self.positions.processed(admitted.events)
        await self._seek(admitted.seeks)

    def _fence(self, generation: int) -> None:
        """Raise Rebalanced when a rebalance began since `generation`; call right before writing state."""
        if generation != self._generation:
            raise Rebalanced

    async def _commit_timer(self) -> None:
        try:
            await self._commit()
        except Exception:  # a commit that fails is retried on the next tick; a crash would stop the worker
            log.exception("committing the agents' offsets failed")

    def lag(self) -> dict[tuple[str, int], int]:
        """The agents' records not processed yet, per partition (from faust's consumer, no broker call)."""
        return self.positions.lag(self._highwater)

    def _highwater(self, tp: tuple[str, int]) -> int | None:
        try:
            found: int | None = cast(Any, self.app.consumer).highwater(TP(*tp))
        except (AssertionError, KeyError):  # not assigned any more
            return None
        return found

    async def _commit(self) -> None:
        """Commit the processed positions of the agents' partitions (faust's own commits skip acks=False topics);
        read again a partition whose records stopped coming while some wait."""
        if not self._assigned.is_set():
            return
        if self._ready():
            await self._seek(self.positions.stalled(self._highwater, after=STALL_S))
        offsets = self.positions.committable(self._committed)
        if not offsets:
            return
        consumer: Any = self.app.consumer  # faust's public commit() only commits acked events, hence _commit
        if await consumer._commit({TP(t, p): o for (t, p), o in offsets.items()}):
            self._committed.update(offsets)

    async def _seek(self, seeks: Mapping[tuple[str, int], int]) -> None:
        """Move the consumer of these partitions back to these offsets, in the consumer's own thread: faust runs
        aiokafka in a thread of its own, and `Consumer.seek` would touch the fetcher from ours."""
        if not seeks:
            return
        for (topic, partition), offset in seeks.items():
            log.info("reading %s[%d] again from %d", topic, partition, offset,
                     extra={"topic": topic, "partition": partition})
        try:
            await self.app.consumer.seek_wait({TP(t, p): o for (t, p), o in seeks.items()})
        except Exception:  # a partition revoked meanwhile: its new owner starts from the committed offset
            log.warning("cannot read %s again", ", ".join(f"{t}[{p}]" for t, p in seeks), exc_info=True)

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """faust sends this after its own flush: let the batches in flight finish (bounded), commit what was
        processed, and hold the agents until the new assignment is positioned and its tables restored."""
        if self._positioning is not None:
            self._positioning.cancel()
        try:
            async with asyncio.timeout(self.conf.session_timeout / 2):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d batch(es) still running at a rebalance: they will not write their state",
                        self._in_flight)
        try:
            await self._commit()
        except Exception:  # the partitions are leaving: whoever gets them reprocesses from the last commit
            log.exception("cannot commit before the rebalance")
        self._generation += 1
        self._assigned.clear()

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Learn where the group stands on the new partitions, then let the agents go. An exception here would
        crash the app (faust's rebalance handler), so broker trouble is retried in the background instead."""
        assigned = args[0] if args else kwargs.get("assigned", ())
        ours = [(tp.topic, tp.partition) for tp in assigned if tp.topic in self._sources]
        self._assigned.clear()
        self._positioning = asyncio.ensure_future(self._position(ours))

    async def _position(self, partitions: list[tuple[str, int]]) -> None:
        for attempt in itertools.count(1):
            try:
                offsets = await start_offsets(self.bus.bootstrap, self.conf.app_id, partitions)
            except Exception:  # broker trouble during a rebalance: try again, the agents wait meanwhile
                log.exception("cannot read the committed offsets (attempt %d); trying again", attempt)
                await asyncio.sleep(min(attempt, 10))
                continue
            self.positions.reset(offsets)
            self._committed = dict(self.positions.done)
            self._assigned.set()
            return

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

    async def diff_batch(self, events: Sequence[Any], generation: int | None = None) -> None:
        records, groups = Staged(self.records), Staged(self.groups)
        diff = PartitionDiff(records, groups)
        out: list[Outgoing] = []
        for event in events:
            records.event = groups.event = event
            out += self._guarded(event.message, lambda m: self._diff_one(diff, m))
        await self.bus.send_all(out)
        if generation is not None:
            self._fence(generation)  # no await between this check and the writes
        written = records.commit() + groups.commit()
        if written:  # the state is durable before the batch's events count as processed (and get committed)
            metadata = await self.bus.send_all(written)
            records.persisted(written, metadata)
            groups.persisted(written, metadata)
        self.processed += len(events)

    def _diff_one(self, diff: PartitionDiff, message: Any) -> list[Outgoing]:
        """A record's change goes to `changes`, or to the gate when a mass rewrite could hold it (kafka_gate.py);
        a snapshot end's removals go to `changes`, and the partition's end to the gate."""
        envelope = decode(message.value)
        topics = self.bus.topics
        if envelope.type == RECORD:
            record = RecordMessage.from_data(envelope.data, envelope.time)
            change = diff.on_record(record, message.partition)
            if change is not None and candidate(change, profile_for(change.dataset)):
                return [candidate_message(topics.gate, change, source=record.source, snapshot=record.snapshot)]
            return [] if change is None else [change_message(topics, change)]
        if envelope.type == RECORD_REMOVED:
            change = diff.on_removed(Removal.from_data(envelope.data, envelope.time), message.partition)
            return [] if change is None else [change_message(topics, change)]
        if envelope.type == SNAPSHOT_END:
            end = SnapshotEnd.from_data(envelope.data, envelope.time)
            out = [change_message(topics, c) for c in diff.on_end(end, message.partition)]
            if end.baseline:
                return out  # a baseline alerts nobody: nothing for the gate to hold
            partitions = end.partitions or self.conf.partitions
            return [*out, end_message(topics.gate, source=end.source, snapshot=end.snapshot,
                                      partition=message.partition, partitions=partitions, rows=end.rows, at=end.at)]
        raise EnvelopeError(f"expected type {RECORD!r}, {RECORD_REMOVED!r} or {SNAPSHOT_END!r}, got {envelope.type!r}")

    async def match_batch(self, events: Sequence[Any], generation: int | None = None) -> None:
        """The batch's changes matched in one call (the index's fixed cost is per call, not per change)."""
        out: list[Outgoing] = []
        read_: list[tuple[Any, Change]] = []
        for event in events:
            out += self._guarded(event.message, lambda m: self._read_change(m, read_))
        try:
            matched = self.feed.index.match_many([change for _, change in read_])
        except Exception:  # one change the index cannot take must not stop the partition: find it alone
            log.exception("matching a batch of %d change(s) failed; matching them one by one", len(read_))
            matched = None
        for i, (message, change) in enumerate(read_):
            if matched is None:
                out += self._guarded(message, functools.partial(self._match_alone, change))
            else:
                out += self._deliveries(change, matched[i])
        await self.bus.send_all(out)
        self.processed += len(events)

    def _match_alone(self, change: Change, _message: Any) -> list[Outgoing]:
        return self._deliveries(change, self.feed.index.match(change))

    def _deliveries(self, change: Change, subscriptions: Sequence[Subscription]) -> list[Outgoing]:
        return [delivery_message(self.bus.topics, Delivery.of(change, s)) for s in subscriptions]

    @staticmethod
    def _read_change(message: Any, into: list[tuple[Any, Change]]) -> list[Outgoing]:
        if not is_held(message):  # a held change is on `changes` for the view, not for subscribers
            into.append((message, read(decode(message.value), CHANGE, change_from_dict)))
        return []

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

    def changelog_specs(self) -> list[TopicSpec]:
        """The tables' changelog topics, made (compacted, with every partition led) before faust starts: two
        workers starting together could otherwise see a just-created changelog with 0 partitions in their
        metadata, which faust's partition check turns into a crash loop of the diff agent."""
        return changelog_specs((table.changelog_topic_name for table in (self.records, self.groups)),
                               self.conf.partitions)

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM, as `faust worker` would, without faust's command line."""
        worker = faust.Worker(self.app, override_logging=False, quiet=True, redirect_stdouts=False,
                              loop=asyncio.get_running_loop())
        await ensure_topics(self.bus.bootstrap, self.changelog_specs())
        await self.bus.start()
        try:
            await worker.start()  # returns once the worker stops (a signal, or a crash)
        finally:
            await worker.stop()
            await self.bus.stop()
        if self.app.crash_reason is not None:
            raise SystemExit(f"stream worker crashed: {self.app.crash_reason!r}")

