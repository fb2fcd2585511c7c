"""The Kafka runtime's per-partition diff gives exactly `core.diff.diff`, whatever the partitioning.

Records are routed to partitions by entity (as the producer keys them), each partition sees its records and
then a snapshot-end marker, in order; the changes of all partitions together must equal the whole-snapshot
diff of the embedded runtime, and the state must equal the embedded one (`core.diff.apply` + `refreshed`).
No broker needed: the faust Tables are dicts here (the e2e tests run the real thing).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.codec import record_from_dict
from core.diff import apply, diff, refreshed
from core.model import Change, Record
from core.profiles import Profile, profile_for
from producers.digests import ABSENT, COMPLETE_MARK, EXPLICIT, delta
from streams.kafka_diff import MARKERS, REMOVED, SEP, DictKV, PartitionDiff, RecordMessage, Removal, SnapshotEnd
from tests.unit.core.factories import AT, inspection
from tests.unit.core.strategies import ENTITIES, KEYS, profiles, states

SOURCE = "ods+https://portal.example/export_alimconfiance"


def partition_of(record: Record, partitions: int) -> int:
    return zlib.crc32(record.entity.encode()) % partitions


class Stream:
    """One diff task per partition over shared dict tables, fed like the Kafka topic would feed them."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.records, self.groups = DictKV(), DictKV()
        self.diff = PartitionDiff(self.records, self.groups, profile_for)
        self.seq = 0

    def snapshot(self, records: Iterable[Record], *, complete: bool, baseline: bool = False,
                 replay: int | None = None) -> list[Change]:
        """Feed one snapshot (or, with `replay`, the messages of snapshot number `replay` again)."""
        if replay is None:
            self.seq += 1
        seq = self.seq if replay is None else replay
        snapshot, version, at = f"snap{seq}", f"v{seq}", AT + timedelta(days=seq)
        current = list(records)
        changes = []
        for r in current:
            msg = RecordMessage(r, snapshot, version, SOURCE, baseline, at)
            change = self.diff.on_record(msg, partition_of(r, self.partitions))
            changes += [] if change is None else [change]
        dataset = current[0].dataset if current else "generic"
        floor = profile_for(dataset).window_floor(current)
        for partition in range(self.partitions):
            end = SnapshotEnd(snapshot, version, SOURCE, dataset, complete, baseline, floor, at)
            changes += self.diff.on_end(end, partition)
        return changes

    def state(self) -> dict[str, Record]:
        return {v["r"]["key"]: record_from_dict(v["r"]) for v in self.records.data.values() if "r" in v}


def signature(changes: Iterable[Change]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((c.id, c.key, c.kinds) for c in changes)


def embedded(previous: dict[str, Record], snapshot: Iterable[Record], *, seq: int, complete: bool,
             profile: Profile) -> list[Change]:
    return diff(previous, snapshot, complete=complete, at=AT + timedelta(days=seq), version=f"v{seq}",
                profile=profile)


def with_fixed_entities(records: dict[str, Record]) -> dict[str, Record]:
    """Each key keeps one entity, so it keeps its partition (as real inspections keep their establishment)."""
    return {k: Record(r.dataset, r.key, r.fields, r.fingerprint, r.point, r.admin,
                      ENTITIES[KEYS.index(k) % len(ENTITIES)] if r.group else "", r.rating)
            for k, r in records.items()}


@settings(max_examples=150, deadline=None)
@given(profile=profiles, data=st.data(), completes=st.lists(st.booleans(), min_size=3, max_size=3),
       partitions=st.sampled_from((1, 2, 3)))
def test_partitioned_diff_equals_the_whole_snapshot_diff(profile: Profile, data: st.DataObject,
                                                         completes: list[bool], partitions: int) -> None:
    draw = [data.draw(states(profile)) for _ in range(4)]
    snapshots = draw if partitions == 1 else [with_fixed_entities(s) for s in draw]
    stream, previous, emitted = Stream(partitions), {}, set()
    stream.snapshot(snapshots[0].values(), complete=True, baseline=True)
    previous = dict(snapshots[0])
    for seq, (snapshot, complete) in enumerate(zip(snapshots[1:], completes, strict=True), start=2):
        expected = embedded(previous, snapshot.values(), seq=seq, complete=complete, profile=profile)
        assert signature(stream.snapshot(snapshot.values(), complete=complete)) == signature(expected)
        emitted |= {c.id for c in expected}
        previous = apply(previous, expected) | {r.key: r for r in refreshed(previous, snapshot.values(), expected)}
        assert stream.state() == previous
        # A worker taking over after a crash reads from older offsets while the state is already past them: the
        # replay may repeat a change (a removed key comes back, then goes again) but never makes up a new one.
        older, older_complete = snapshots[seq - 2], True if seq == 2 else completes[seq - 3]
        replayed = stream.snapshot(older.values(), complete=older_complete, baseline=seq == 2, replay=seq - 1)
        replayed += stream.snapshot(snapshot.values(), complete=complete, replay=seq)
        assert {c.id for c in replayed} <= emitted
        assert stream.state() == previous


def test_a_redelivered_record_emits_nothing_new_and_a_replayed_snapshot_the_same_ids() -> None:
    stream = Stream(2)
    old = [inspection("a", entity="e1", rating=1, date="2025-01-10"), inspection("b", entity="e2")]
    stream.snapshot(old, complete=True, baseline=True)
    new = [inspection("a", entity="e1", rating=1, date="2025-01-10"),
           inspection("c", entity="e1", rating=4, date="2025-06-01")]
    first = stream.snapshot(new, complete=True)
    assert sorted(c.kinds for c in first) == [("new_inspection", "downgrade"), ("removed",)]
    msg = RecordMessage(new[1], "snap2", "v2", SOURCE, False, AT)
    assert stream.diff.on_record(msg, partition_of(new[1], 2)) is None  # redelivered after the commit

    lost = Stream(2)  # the same snapshots, but the state of the second was never committed
    lost.snapshot(old, complete=True, baseline=True)
    assert signature(lost.snapshot(new, complete=True)) == signature(first)


def test_trends_compare_with_the_entity_state_before_the_snapshot() -> None:
    """Two new inspections of one establishment in one snapshot both compare with its last known one."""
    stream = Stream(1)
    stream.snapshot([inspection("a", entity="e1", rating=2, date="2025-01-10")], complete=True, baseline=True)
    changes = stream.snapshot([inspection("a", entity="e1", rating=2, date="2025-01-10"),
                               inspection("b", entity="e1", rating=1, date="2025-03-01"),
                               inspection("c", entity="e1", rating=4, date="2025-05-01")], complete=True)
    assert sorted((c.key, c.kinds) for c in changes) == [("b", ("new_inspection", "upgrade")),
                                                          ("c", ("new_inspection", "downgrade"))]


def test_an_incomplete_marker_removes_nothing_and_a_baseline_alerts_nobody() -> None:
    stream = Stream(3)
    rows = [inspection(key, entity=key) for key in ("a", "b", "c")]
    assert stream.snapshot(rows, complete=True, baseline=True) == []
    assert stream.snapshot(rows[:1], complete=False) == []
    assert sorted(c.key for c in stream.snapshot(rows[:1], complete=True)) == ["b", "c"]


Message = RecordMessage | Removal | SnapshotEnd


class DigestStream(Stream):
    """The same tables fed as a producer with digests feeds them: only the records whose fingerprint moved, one
    removal per key a complete snapshot lost, markers saying so (producers/digests.py)."""

    def __init__(self, partitions: int, profile: Profile) -> None:
        super().__init__(partitions)
        self.profile, self.known, self.sent = profile, dict[str, str](), dict[int, list[tuple[Message, int]]]()

    def snapshot(self, records: Iterable[Record], *, complete: bool, baseline: bool = False,
                 replay: int | None = None) -> list[Change]:
        if replay is None:
            self.seq += 1
            self.sent[self.seq] = self._messages(list(records), complete=complete, baseline=baseline)
        return [c for msg, partition in self.sent[self.seq if replay is None else replay]
                for c in self._feed(msg, partition)]

    def _messages(self, current: list[Record], *, complete: bool, baseline: bool) -> list[tuple[Message, int]]:
        snapshot, version, at = f"snap{self.seq}", f"v{self.seq}", AT + timedelta(days=self.seq)
        moved = delta(current, self.known, complete=complete, profile=self.profile)
        floor, dataset = self.profile.window_floor(current), self.profile.dataset or "generic"
        out: list[tuple[Message, int]] = [(RecordMessage(r, snapshot, version, SOURCE, baseline, at),
                                           partition_of(r, self.partitions)) for r in moved.send]
        gone = {k: r for k, r in self.state().items() if k in moved.removed}
        out += [(Removal(k, dataset, snapshot, version, SOURCE, baseline, floor, at), partition_of(r, self.partitions))
                for k, r in gone.items()]
        out += [(SnapshotEnd(snapshot, version, SOURCE, dataset, complete, baseline, floor, at,
                             explicit=moved.removals == EXPLICIT), p) for p in range(self.partitions)]
        self.known = {k: v for k, v in self.known.items() if k not in moved.removed} | moved.digests
        if moved.removals == ABSENT and complete:
            self.known = {**moved.digests, COMPLETE_MARK: "1"}
        return out

    def _feed(self, msg: Message, partition: int) -> list[Change]:
        if isinstance(msg, RecordMessage):
            change = self.diff.on_record(msg, partition)
        elif isinstance(msg, Removal):
            change = self.diff.on_removed(msg, partition)
        else:
            return self.diff.on_end(msg, partition)
        return [] if change is None else [change]


@settings(max_examples=150, deadline=None)
@given(profile=profiles, data=st.data(), completes=st.lists(st.booleans(), min_size=3, max_size=3),
       partitions=st.sampled_from((1, 2, 3)))
def test_sending_only_what_changed_gives_the_whole_snapshot_diff(profile: Profile, data: st.DataObject,
                                                                 completes: list[bool], partitions: int) -> None:
    draw = [with_fixed_entities(data.draw(states(profile))) for _ in range(4)]
    stream, previous = DigestStream(partitions, profile), dict(draw[0])
    stream.snapshot(draw[0].values(), complete=True, baseline=True)
    for seq, (snapshot, complete) in enumerate(zip(draw[1:], completes, strict=True), start=2):
        expected = embedded(previous, snapshot.values(), seq=seq, complete=complete, profile=profile)
        assert signature(stream.snapshot(snapshot.values(), complete=complete)) == signature(expected)
        previous = apply(previous, expected) | {r.key: r for r in refreshed(previous, snapshot.values(), expected)}
        assert stream.state() == previous
        assert signature(stream.snapshot([], complete=complete, replay=seq)) == []  # a replay changes nothing
        assert stream.state() == previous


def test_an_unchanged_republication_sends_no_record() -> None:
    rows = [inspection(key, entity=key) for key in ("a", "b", "c")]
    stream = DigestStream(2, profile_for("alimconfiance"))
    stream.snapshot(rows, complete=True, baseline=True)
    assert stream.snapshot(rows, complete=True) == []
    assert [type(m).__name__ for m, _ in stream.sent[2]] == ["SnapshotEnd", "SnapshotEnd"]
    assert [c.key for c in stream.snapshot(rows[1:], complete=True)] == ["a"]
    assert [type(m).__name__ for m, _ in stream.sent[3]] == ["Removal", "SnapshotEnd", "SnapshotEnd"]


class NoScan(DictKV):
    """The records table of a worker whose ends must not read the whole state."""

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        raise AssertionError(f"an explicit end scanned the state ({prefix!r})")


def test_a_removal_marker_lives_one_snapshot_and_explicit_ends_read_only_the_markers() -> None:
    rows = [inspection(key, entity=key) for key in ("a", "b", "c")]
    stream = DigestStream(2, profile_for("alimconfiance"))
    stream.snapshot(rows, complete=True, baseline=True)  # whole: its ends read the state
    stream.records.__class__ = NoScan  # from now on every snapshot is explicit
    assert [c.key for c in stream.snapshot(rows[1:], complete=True)] == ["a"]
    markers = {k for k, v in stream.records.data.items() if REMOVED in v}
    assert markers == {f"{SOURCE}{SEP}a"}  # it blocks a replay of the older snapshot
    stream.snapshot(rows[1:], complete=True)
    assert not any(REMOVED in v for v in stream.records.data.values())  # forgotten one snapshot later
    assert not any(MARKERS in k for k in stream.groups.data)
    assert [c.key for c in stream.snapshot(rows, complete=True)] == ["a"]  # and the key can come back
