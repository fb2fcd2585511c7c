"""The producer role on Kafka: poll a source, map its rows, publish the snapshot to `records.<dataset>`.

A snapshot goes out as

    one RECORD envelope per record    key = Profile.partition_key(record): fixed for a record key (Alim'Confiance:
        the SIRET, so an inspection whose address changes stays with its diff state, and an establishment's
        inspections share a partition)
        data = core.codec.record_to_dict(record) + {snapshot, version, source, baseline}
    one SNAPSHOT_END envelope per partition of the topic, after every record
        data = {snapshot, version, source, dataset, complete, floor, baseline, rows, partition, partitions}

Only what changed crosses Kafka (producers/digests.py): records whose fingerprint moved since the digests of the
last snapshot sent, and one REMOVED envelope per key a complete snapshot no longer holds (key = its partition
key; data = {key, dataset, snapshot, version, source, baseline, floor}); the end markers then say
`removals: "explicit"`. Until a complete snapshot went out whole, every record goes and they say "absent".

`complete` False (incremental feed, failed or truncated download, too few rows) tells the diff agents to remove
nothing; `floor` is `Profile.window_floor` of the whole snapshot (removals older than it are `aged_out`).
`baseline` is set until a source has had one trusted snapshot: its records fill the diff state and alert nobody
(the embedded runtime's rule; `baseline_alerts` turns it off).

Source versions and health live in Redis (hash `<namespace>:source:<url>`), written only after every message of
the snapshot is acknowledged: a producer that dies mid-snapshot publishes it again (same change ids downstream),
and a restarted one skips a source whose metadata did not change. Quarantined rows go to `dlq.records.<dataset>`
with their reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from core.codec import KAFKA_HEADERS, RECORD, RECORD_REMOVED, SNAPSHOT_END, Envelope, decode, record_to_dict
from core.errors import EnvelopeError
from core.model import Record, stable_hash
from core.ports import Adapter, Quarantined, Snapshot, Source
from core.profiles import profile_for
from core.snapshots import judge, scoped
from core.topology import Topics, dead_letter_headers
from producers.digests import ABSENT, Delta, RedisDigests, delta

log = logging.getLogger(__name__)

ENVELOPE_SOURCE = "/vigie/producer"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the producer remembers of a source. `version` is set only by trusted snapshots."""

    url: str
    version: str | None
    healthy: bool
    problem: str | None
    checked_at: str | None
    rows: int | None
    incident: str | None = None  # the open incident (core/health.py): "stale" or "failing"
    incident_since: str | None = None
    failures: int = 0  # consecutive failed or incomplete polls
    failing_since: str | None = None
    fresh_at: str | None = None  # when a new version was last seen

    @property
    def baseline_done(self) -> bool:
        return self.version is not None


@dataclass(frozen=True, slots=True)
class Published:
    """One poll of one source, as the producer saw it."""

    source: str
    version: str
    snapshot: str | None = None
    records: int = 0
    complete: bool = False
    baseline: bool = False
    unchanged: bool = False
    problem: str | None = None
    quarantined: int = 0
    sent: int = 0  # records that crossed Kafka (new or changed since the digests)
    removed: int = 0  # removals sent

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.source, "version": self.version, "snapshot": self.snapshot, "rows": self.records,
                "complete": self.complete, "baseline": self.baseline, "unchanged": self.unchanged,
                "problem": self.problem, "quarantined": self.quarantined, "sent": self.sent,
                "removed": self.removed}


class RedisSourceState:
    """Source versions and health in Redis, one hash per source URL."""

    def __init__(self, url: str, *, namespace: str = "vigie") -> None:
        self._redis = Redis.from_url(url, decode_responses=True)
        self._prefix = f"{namespace}:source:"

    async def get(self, url: str) -> SourceStatus | None:
        raw = await self._redis.hgetall(self._prefix + url)
        if not raw:
            return None
        d = {str(k): str(v) for k, v in raw.items()}
        return SourceStatus(url, d.get("version") or None, d.get("healthy") == "1", d.get("problem") or None,
                            d.get("checked_at") or None, int(d["rows"]) if d.get("rows") else None,
                            d.get("incident") or None, d.get("incident_since") or None, int(d.get("failures") or 0),
                            d.get("failing_since") or None, d.get("fresh_at") or None)

    async def put_incident(self, url: str, fields: Mapping[str, str]) -> None:
        """The source's incident fields (incident, incident_since, failures, failing_since, fresh_at; "" for none)."""
        mapping: dict[Any, Any] = dict(fields)
        await self._redis.hset(self._prefix + url, mapping=mapping)

    async def put(self, status: SourceStatus) -> None:
        """Record a poll; a missing version or row count keeps the one already stored."""
        fields: dict[Any, Any] = {"healthy": "1" if status.healthy else "0", "problem": status.problem or "",
                  "checked_at": status.checked_at or ""}
        if status.version is not None:
            fields["version"] = status.version
        if status.rows is not None:
            fields["rows"] = str(status.rows)
        await self._redis.hset(self._prefix + status.url, mapping=fields)

    async def all(self) -> list[SourceStatus]:
        found = []
        async for key in self._redis.scan_iter(match=self._prefix + "*"):
            status = await self.get(str(key).removeprefix(self._prefix))
            if status is not None:
                found.append(status)
        return sorted(found, key=lambda s: s.url)

    async def aclose(self) -> None:
        await self._redis.aclose()


def record_envelope(record: Record, *, snapshot: str, version: str, source: str, baseline: bool,
                    at: datetime) -> Envelope:
    data = {**record_to_dict(record), "snapshot": snapshot, "version": version, "source": source,
            "baseline": baseline}
    return Envelope(stable_hash(snapshot, record.key), RECORD, ENVELOPE_SOURCE, record.key, at, data)


def removal_envelope(key: str, snapshot: Snapshot, *, snapshot_id: str, baseline: bool, floor: str | None,
                     at: datetime) -> Envelope:
    data = {"key": key, "dataset": snapshot.dataset, "snapshot": snapshot_id, "version": snapshot.version,
            "source": snapshot.source, "baseline": baseline, "floor": floor}
    return Envelope(stable_hash(snapshot_id, key, "removed"), RECORD_REMOVED, ENVELOPE_SOURCE, key, at, data)


def end_envelope(snapshot: Snapshot, *, snapshot_id: str, complete: bool, baseline: bool, partition: int,
                 partitions: int, at: datetime, removals: str = ABSENT) -> Envelope:
    data = {"snapshot": snapshot_id, "version": snapshot.version, "source": snapshot.source,
            "dataset": snapshot.dataset, "complete": complete, "baseline": baseline, "rows": len(snapshot.records),
            "floor": profile_for(snapshot.dataset).window_floor(snapshot.records), "partition": partition,
            "partitions": partitions, "removals": removals}
    return Envelope(stable_hash(snapshot_id, "end", str(partition)), SNAPSHOT_END, ENVELOPE_SOURCE,
                    snapshot.source, at, data)


class KafkaPublisher:
    """Publishes snapshots with an idempotent producer (`acks=all`); `start()`/`stop()` around use."""

    def __init__(self, bootstrap: str, *, prefix: str = "", client_id: str = "vigie-producer") -> None:
        self._topics = Topics(prefix)
        self._bootstrap = bootstrap
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks="all",
                                          enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024,
                                          request_timeout_ms=30_000)

    def topic(self, dataset: str) -> str:
        return self._topics.records(dataset)

    def dlq(self, dataset: str) -> str:
        return self._topics.dlq(self._topics.records(dataset))

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, snapshot: Snapshot, *, snapshot_id: str, complete: bool, baseline: bool,
                      at: datetime, moved: Delta | None = None) -> None:
        """The records `moved` sends (default: every record) and its removals, then an end marker on every
        partition; returns once all are acknowledged."""
        topic, profile = self.topic(snapshot.dataset), profile_for(snapshot.dataset)
        moved = moved or Delta(list(snapshot.records), {}, removals=ABSENT)
        futures = [await self._producer.send(
            topic, record_envelope(r, snapshot=snapshot_id, version=snapshot.version, source=snapshot.source,
                                   baseline=baseline, at=at).encode(), key=profile.partition_key(r).encode(),
            headers=list(KAFKA_HEADERS))
            for r in moved.send]
        floor = profile.window_floor(snapshot.records) if moved.removed else None
        futures += [await self._producer.send(
            topic, removal_envelope(key, snapshot, snapshot_id=snapshot_id, baseline=baseline, floor=floor,
                                    at=at).encode(), key=partition_key.encode(), headers=list(KAFKA_HEADERS))
            for key, partition_key in sorted(moved.removed.items())]
        futures += [await self._quarantine(snapshot.dataset, q) for q in snapshot.quarantined]
        for future in futures:
            await future
        partitions = sorted(await self._producer.partitions_for(topic))
        ends = [await self._producer.send(topic, end_envelope(
            snapshot, snapshot_id=snapshot_id, complete=complete, baseline=baseline, partition=p,
            partitions=len(partitions), at=at, removals=moved.removals).encode(),
            partition=p, headers=list(KAFKA_HEADERS)) for p in partitions]
        for future in ends:
            await future

    async def published_before(self, dataset: str, source: str, *, window: int = 500) -> bool:
        """Whether the last `window` messages of partition 0 hold a snapshot end of `source` (every snapshot ends
        on every partition): the source was published before, whatever Redis remembers."""
        tp = TopicPartition(self.topic(dataset), 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            begin, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, max(begin, end - window))
            while await consumer.position(tp) < end:
                for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if _ends(message.value, source):
                        return True
            return False
        finally:
            await consumer.stop()

    async def _quarantine(self, dataset: str, q: Quarantined) -> Any:
        headers = list(dead_letter_headers(q.reason, source=q.source))
        return await self._producer.send(self.dlq(dataset), orjson.dumps(dict(q.row), default=str), headers=headers)


def _ends(value: bytes | None, source: str) -> bool:
    try:
        envelope = decode(value)
    except EnvelopeError:
        return False
    return envelope.type == SNAPSHOT_END and envelope.data.get("source") == source


class SnapshotProducer:
    """Polls sources and publishes what changed; the producer role's loop body."""

    def __init__(self, publisher: KafkaPublisher, state: RedisSourceState, *, min_ratio: float = 0.5,
                 baseline_alerts: bool = False, digests: RedisDigests | None = None) -> None:
        self.publisher = publisher
        self.state = state
        self.digests = digests  # None: every snapshot goes out whole
        self._min_ratio = min_ratio
        self._baseline_alerts = baseline_alerts

    async def poll(self, url: str, source: Source, adapter: Adapter, *, at: datetime) -> Published:
        status = await self.state.get(url)
        raw = await source.fetch(status.version if status else None)
        if raw.unchanged:
            await self.state.put(SourceStatus(url, None, True, None, at.isoformat(), None))
            log.info("%s unchanged (%s)", url, raw.version, extra={"source": url})
            return Published(url, raw.version, unchanged=True, complete=raw.complete)
        snapshot = scoped(url, adapter.to_snapshot(raw), raw.problem)
        return await self.publish(snapshot, status, at=at)

    async def publish(self, snapshot: Snapshot, status: SourceStatus | None, *, at: datetime) -> Published:
        url = snapshot.source
        verdict = judge(snapshot, known_rows=(status.rows or 0) if status else 0,
                        trusted_before=bool(status and status.baseline_done), min_ratio=self._min_ratio,
                        baseline_alerts=self._baseline_alerts)
        complete, problem, baseline = verdict.complete, verdict.problem, not verdict.alerts
        if baseline and status is None and await self.publisher.published_before(snapshot.dataset, url):
            log.error("no state for %s in Redis, yet the records topic holds its snapshots: Redis lost its data "
                      "(restore it from its AOF or a backup). This snapshot is not treated as a baseline: its "
                      "changes alert", url, extra={"source": url})
            baseline = False
        snapshot_id = stable_hash(url, snapshot.version, at.isoformat())
        moved = await self._delta(snapshot, complete=complete)
        if snapshot.records or complete:
            await self.publisher.publish(snapshot, snapshot_id=snapshot_id, complete=complete, baseline=baseline,
                                         at=at, moved=moved)
            if self.digests is not None:  # only once every message is acknowledged
                await self.digests.save(url, moved)
        rows = len(snapshot.records) if complete else None
        await self.state.put(SourceStatus(url, None if problem else snapshot.version, problem is None, problem,
                                          at.isoformat(), rows))
        log.info("published %s: %d records, %d sent, %d removed, complete=%s, baseline=%s, problem=%s", url,
                 len(snapshot.records), len(moved.send), len(moved.removed), complete, baseline, problem,
                 extra={"source": url, "snapshot": snapshot_id})
        return Published(url, snapshot.version, snapshot_id, len(snapshot.records), complete, baseline, False,
                         problem, len(snapshot.quarantined), len(moved.send), len(moved.removed))

    async def _delta(self, snapshot: Snapshot, *, complete: bool) -> Delta:
        if self.digests is None:
            return Delta(list(snapshot.records), {}, removals=ABSENT, complete=complete)
        known = await self.digests.load(snapshot.source)
        return delta(list(snapshot.records), known, complete=complete, profile=profile_for(snapshot.dataset))


def describe(statuses: list[SourceStatus]) -> list[Mapping[str, Any]]:
    return [{"url": s.url, "version": s.version, "healthy": s.healthy, "problem": s.problem,
             "checked_at": s.checked_at, "rows": s.rows} for s in statuses]
