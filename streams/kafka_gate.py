"""The mass-change guard on Kafka: one place sees every candidate of a snapshot, and decides as the embedded runtime.

A candidate (core/storms.py: an update that leaves every result as it was) can belong to a mass rewrite, which only
the whole snapshot tells. So the diff agents send candidates to the single-partition `gate` topic instead of
`changes`, and, at each snapshot-end marker, the partition's end; every other change goes to `changes` at once.

    diff agents ──candidates, one end per partition──▶ [gate] ──▶ Gate (a consumer group: one worker reads it)
        kept candidates                                    ──▶ [changes]
        held changes, header `vigie-held: <event id>`      ──▶ [changes]  (the view applies them, matching skips them)
        one notice per subscription a held change reaches ──▶ [deliveries.<channel>]
        the event and its held changes                     ──▶ Redis (streams/held_redis.py)

Once the ends of every partition of a snapshot are in, the gate calls `core.storms.split` on its candidates, with
the snapshot's row count, exactly as the embedded processor does on the whole snapshot. It writes Redis, then
publishes, then commits its offset up to the oldest message of a snapshot still open: a gate that dies (or whose
partition moves) reads those again and decides the same way, with the same ids. Candidates and ends are deduped
(a diff batch replayed after a crash sends them again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from core.codec import KAFKA_HEADERS, Envelope, change_from_dict, change_to_dict, decode
from core.errors import EnvelopeError
from core.model import Change, Delivery, Subscription
from core.profiles import Profile, profile_for
from core.storms import MassRule, Split, notice, split
from core.topology import held_headers
from streams.bus.kafka import KafkaBus, Outgoing, change_message, cloudevent, delivery_message
from streams.held_redis import RedisHeldEvents
from streams.kafka_view import Report, backoff

log = logging.getLogger(__name__)

CANDIDATE = "org.vigie.gate.candidate"
PARTITION_END = "org.vigie.gate.end"
ENVELOPE_SOURCE = "/vigie/streams/gate"
Match = Callable[[Change], Iterable[Subscription]]


def candidate_message(topic: str, change: Change, *, source: str, snapshot: str) -> Outgoing:
    data = {"source": source, "snapshot": snapshot, "change": change_to_dict(change)}
    return cloudevent(topic, Envelope(change.id, CANDIDATE, ENVELOPE_SOURCE, change.key, change.detected_at, data),
                      key=source.encode(), partition=0)


def end_message(topic: str, *, source: str, snapshot: str, partition: int, partitions: int, rows: int,
                at: datetime) -> Outgoing:
    data = {"source": source, "snapshot": snapshot, "partition": partition, "partitions": partitions, "rows": rows}
    envelope = Envelope(f"{snapshot}-{partition}", PARTITION_END, ENVELOPE_SOURCE, source, at, data)
    return cloudevent(topic, envelope, key=source.encode(), partition=0)


@dataclass
class Open:
    """A snapshot whose partitions have not all reported yet."""

    first_offset: int
    candidates: dict[str, Change] = field(default_factory=dict)
    ends: dict[int, dict[str, Any]] = field(default_factory=dict)

    def complete(self) -> bool:
        wanted = max((int(e["partitions"]) for e in self.ends.values()), default=0)
        return bool(wanted) and len(self.ends) >= wanted

    def rows(self, fallback: int = 0) -> int:
        return max((int(e["rows"]) for e in self.ends.values()), default=fallback)


class Decisions:
    """The gate's pure part: fold messages into open snapshots and decide the complete ones."""

    def __init__(self, rule: MassRule, profiles: Callable[[str], Profile] = profile_for) -> None:
        self.rule = rule
        self.profiles = profiles
        self.open: dict[tuple[str, str], Open] = {}

    def add(self, envelope: Envelope, offset: int) -> list[tuple[str, str]]:
        """Fold one message in; the snapshots to decide now: the one it completes, and older open ones of the same
        source, which will never complete (their producer died before sending every end, then published anew)."""
        data = envelope.data
        try:
            snapshot = (str(data["source"]), str(data["snapshot"]))
            pending = self.open.setdefault(snapshot, Open(offset))
            if envelope.type == CANDIDATE:
                change = change_from_dict(data["change"])
                pending.candidates[change.id] = change
            elif envelope.type == PARTITION_END:
                pending.ends[int(data["partition"])] = data
            else:
                raise EnvelopeError(f"expected a gate message, got {envelope.type!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"invalid gate message: {type(exc).__name__}: {exc}") from exc
        if not pending.complete():
            return []
        abandoned = [key for key, other in self.open.items()
                     if key[0] == snapshot[0] and key != snapshot and other.first_offset < pending.first_offset]
        return [*abandoned, snapshot]

    def decide(self, snapshot: tuple[str, str], rows: int = 0) -> Split:
        pending = self.open.pop(snapshot)
        changes = sorted(pending.candidates.values(), key=lambda c: c.id)
        if not changes:
            return Split([], [], None)
        profile = self.profiles(changes[0].dataset)
        return split(changes, rows=pending.rows(rows), profile=profile, rule=self.rule, source=snapshot[0])

    def committable(self, position: int) -> int:
        """The offset to commit: the oldest message of a snapshot still open, else everything read."""
        return min((p.first_offset for p in self.open.values()), default=position)


class Gate:
    """`run(stop)` until `stop` is set; failures (broker, Redis) back off and resume from the committed offset."""

    def __init__(self, bus: KafkaBus, held: RedisHeldEvents, *, group: str, rule: MassRule, match: Match,
                 ready: Callable[[], Awaitable[object]], report: Report) -> None:
        self.bus, self.held, self.group = bus, held, group
        self.topic = bus.topics.gate
        self._rule, self._match, self._ready, self._report = rule, match, ready, report
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bus.bootstrap, group_id=self.group,
                                        client_id=self.group, enable_auto_commit=False, auto_offset_reset="earliest",
                                        fetch_max_wait_ms=50)
            try:
                await consumer.start()
                await self._loop(consumer, Decisions(self._rule), stop)
            except Exception as exc:  # broker or Redis trouble: read again from the committed offset
                self.failures += 1
                self._report(f"mass-change gate failing ({type(exc).__name__}: {exc})")
                log.exception("the mass-change gate failed; resuming from its committed offset")
                await _pause(stop, backoff(self.failures))
            finally:
                await consumer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer, decisions: Decisions, stop: asyncio.Event) -> None:
        while not stop.is_set():
            found = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, messages in found.items():
                for message in messages:
                    done = self._add(decisions, message)
                    rows = decisions.open[done[-1]].rows() if done else 0  # for abandoned ones without an end
                    for snapshot in done:
                        await self._decided(snapshot, decisions.decide(snapshot, rows))
                await _commit(consumer, tp, decisions.committable(messages[-1].offset + 1))
            if found and self.failures:
                self.failures = 0
                self._report(None)

    def _add(self, decisions: Decisions, message: Any) -> list[tuple[str, str]]:
        try:
            return decisions.add(decode(message.value), message.offset)
        except EnvelopeError as exc:
            log.warning("the gate skips %s@%d: %s", message.topic, message.offset, exc)
            return []

    async def _decided(self, snapshot: tuple[str, str], parted: Split) -> None:
        topics = self.bus.topics
        out = [change_message(topics, c) for c in parted.kept]
        if parted.event is not None:
            await self._ready()
            await self.held.hold(parted.event, parted.held)
            mark = KAFKA_HEADERS + held_headers(parted.event.id)
            out += [change_message(topics, c, headers=mark) for c in parted.held]
            out += self._notices(parted)
            log.warning("held a mass rewrite of %s on %d of %d records of %s (event %s); `vigie sources release` "
                        "lets it through", ", ".join(parted.event.fields), parted.event.count, parted.event.rows,
                        snapshot[0], parted.event.id, extra={"source": snapshot[0]})
        await self.bus.send_all(out)

    def _notices(self, parted: Split) -> list[Outgoing]:
        if parted.event is None:
            return []
        reached = {s.id: s for change in parted.held for s in self._match(change)}
        announcement = notice(parted.event)
        return [delivery_message(self.bus.topics, Delivery.of(announcement, s)) for s in reached.values()]


async def _commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
    try:
        await consumer.commit({tp: offset})
    except (CommitFailedError, IllegalStateError) as exc:  # the partition moved: its new owner decides again
        log.warning("gate offset not committed (%s): the new owner reads the open snapshots again",
                    type(exc).__name__)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


__all__ = ["CANDIDATE", "PARTITION_END", "Decisions", "Gate", "candidate_message", "end_message"]
