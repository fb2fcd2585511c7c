"""The diff of the embedded processor, one message at a time, for one partition of `records.<dataset>`.

The producer keys records by entity, so an establishment's inspections share a partition, and it ends each
snapshot with a marker on every partition. The diff task of a partition therefore sees, in order, the records
of a snapshot it owns and then the marker saying "that was all of it" (see producers/kafka_publisher.py for
the message shapes). State lives in two key/value views (faust Tables in the worker, dicts in tests):

    records  "<source>\\x1f<key>"    → {"r": record dict, "s": snapshot last seen in, "t": that snapshot's time,
                                        "p": partition, "b": the record before that snapshot (absent: same as "r";
                                        None: new)}
    groups   "<source>\\x1f<entity>" → sorted record keys of the entity (a key that changed entity may linger)
             "<source>\\x1f\\x1fremoved\\x1f<partition>" → the keys of the partition's removal markers

`"b"` keeps the state *before* the current snapshot readable while the snapshot streams in, so `created` kinds
compare with the entity's latest record before the snapshot, exactly as `core.diff.diff` does. The source URL
scopes the state, as in the embedded runtime.

A record is diffed with `core.diff.diff_one` against the stored version, and stored whenever its fingerprint moved
(the embedded state's `core.diff.apply` plus `core.diff.refreshed`: a cosmetic difference is stored silently, so
the next change compares with what was really published); a *complete* marker removes the keys
of its partition and source not seen in its snapshot with `core.diff.removal` (aged_out below the marker's
floor). An incomplete marker removes nothing. Baseline records and markers update the state and emit nothing.
The caller must publish the returned changes durably *before* it commits the staged state.

A producer that sends only what changed (producers/digests.py) says so in its markers (`removals: "explicit"`):
a key absent from the snapshot is then unchanged, not gone, and each gone key comes as a REMOVED message
(`on_removed`), diffed with `core.diff.removal` as a marker would have.

Replays are harmless. After a crash or a rebalance the state (changelog) can be ahead of the committed offsets,
so messages of an *older* snapshot may come again: a record older than the snapshot its key was last seen in is
ignored, and a marker only removes keys last seen in an older snapshot than its own ("t", the producer's poll
time, orders the snapshots of a source). A removed key stays as a removal entry ({"x": 1, "s", "t", "p"}) until
the next complete marker of its partition, so a replayed older record cannot bring it back. A redelivery within
the same snapshot changes nothing either. (Exact as long as committed offsets lag by less than one snapshot
period; they lag by about a second.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.codec import record_from_dict, record_to_dict
from core.diff import diff_one, latest_by_group, removal
from core.errors import EnvelopeError
from core.model import Change, Record
from core.profiles import Profile, profile_for

SEP = "\x1f"
REMOVED = "x"  # an entry with this field is a removal marker: {"x": 1, "s", "t", "p"}
MARKERS = f"{SEP}removed{SEP}"  # groups "<source>\x1f\x1fremoved\x1f<partition>" → keys with a removal marker
Entry = dict[str, Any]


class KV(Protocol):
    """A key/value view of a table: the diff reads and writes state through it."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class RecordMessage:
    record: Record
    snapshot: str
    version: str
    source: str
    baseline: bool
    at: datetime

    @classmethod
    def from_data(cls, data: dict[str, Any], at: datetime) -> RecordMessage:
        try:
            return cls(record_from_dict(data), str(data["snapshot"]), str(data["version"]), str(data["source"]),
                       bool(data.get("baseline", False)), at)
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"invalid record data: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SnapshotEnd:
    snapshot: str
    version: str
    source: str
    dataset: str
    complete: bool
    baseline: bool
    floor: str | None
    at: datetime
    rows: int = 0  # in the whole snapshot
    partitions: int = 0  # of the topic, as the producer saw it (0: not said)
    explicit: bool = False  # removals come as REMOVED messages; an absent key is unchanged, not gone

    @classmethod
    def from_data(cls, data: dict[str, Any], at: datetime) -> SnapshotEnd:
        try:
            floor = data.get("floor")
            return cls(str(data["snapshot"]), str(data["version"]), str(data["source"]), str(data["dataset"]),
                       _flag(data["complete"]), _flag(data.get("baseline", False)),
                       None if floor is None else str(floor), at, int(data.get("rows") or 0),
                       int(data.get("partitions") or 0), data.get("removals") == "explicit")
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"invalid snapshot-end data: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Removal:
    """A key a complete snapshot no longer holds, told by a producer that sends only what changed."""

    key: str
    dataset: str
    snapshot: str
    version: str
    source: str
    baseline: bool
    floor: str | None
    at: datetime

    @classmethod
    def from_data(cls, data: dict[str, Any], at: datetime) -> Removal:
        try:
            floor = data.get("floor")
            return cls(str(data["key"]), str(data["dataset"]), str(data["snapshot"]), str(data["version"]),
                       str(data["source"]), _flag(data.get("baseline", False)), None if floor is None else str(floor),
                       at)
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"invalid removal data: {type(exc).__name__}: {exc}") from exc


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _before_snapshot(entry: Entry | None, snapshot: str) -> Any:
    """The record dict as it was before `snapshot` (None: the key did not exist then)."""
    if entry is None or REMOVED in entry:
        return None
    if entry["s"] != snapshot:
        return entry["r"]
    return entry["b"] if "b" in entry else entry["r"]


class PartitionDiff:
    """Diff state transitions for records and snapshot-end markers; pure apart from the KV views."""

    def __init__(self, records: KV, groups: KV, profiles: Callable[[str], Profile] = profile_for) -> None:
        self.records = records
        self.groups = groups
        self._profiles = profiles

    def on_record(self, msg: RecordMessage, partition: int) -> Change | None:
        record = msg.record
        key = f"{msg.source}{SEP}{record.key}"
        entry: Entry | None = self.records.get(key)
        if entry is not None and entry["s"] != msg.snapshot and entry["t"] > msg.at.timestamp():
            return None  # a replayed record of an older snapshot: the state is already past it
        if entry is not None and REMOVED in entry:
            entry = None  # removed by an earlier snapshot: the key is new again
        if entry is not None and entry["r"]["fingerprint"] == record.fingerprint:
            self._seen(key, entry, msg, partition)
            return None
        before = None if entry is None else record_from_dict(entry["r"])
        profile = self._profiles(record.dataset)
        last = self._latest_before(msg, profile) if before is None else None
        change = diff_one(before, record, at=msg.at, version=msg.version, profile=profile, last_in_group=last)
        if change is None and entry is not None:  # nothing that matters moved (a layout or cosmetic difference):
            self.records.put(key, self._stored(entry, msg, partition))  # stored silently, as core.diff.refreshed
            self._move(msg.source, before, record)
            return None
        self.records.put(key, self._stored(entry, msg, partition))
        self._move(msg.source, before, record)
        return None if msg.baseline else change

    def on_end(self, end: SnapshotEnd, partition: int) -> list[Change]:
        """Remove the keys of `partition` last seen in an older snapshot (with explicit removals: only forget the
        removal entries of older snapshots); a removal leaves a marker entry for one snapshot period, so that a
        replay of older messages cannot bring the key back. With explicit removals the partition's list of
        markers is read instead of the whole state: the end costs what the snapshot removed, not what it holds."""
        if not end.complete:
            return []
        at = end.at.timestamp()
        if end.explicit:
            self._forget_markers(end.source, partition, lambda entry: entry["s"] != end.snapshot and entry["t"] < at)
            return []
        profile = self._profiles(end.dataset)
        changes = []
        for key, entry in list(self.records.scan(f"{end.source}{SEP}")):
            if entry["p"] != partition or entry["s"] == end.snapshot or entry["t"] >= at:
                continue
            if REMOVED in entry:
                self.records.delete(key)  # removed a snapshot ago: no replay reaches back that far
                continue
            before = record_from_dict(entry["r"])
            self._remove(end.source, before, snapshot=end.snapshot, at=at, partition=partition)
            if not end.baseline:
                changes.append(removal(before, at=end.at, version=end.version, profile=profile, floor=end.floor))
        self._forget_markers(end.source, partition, lambda _entry: False)  # the list loses the markers just deleted
        return changes

    def _forget_markers(self, source: str, partition: int, expired: Callable[[Entry], bool]) -> None:
        """Delete the partition's removal markers that are `expired`; the list keeps the others (a key that came
        back, or whose marker moved to another partition, leaves it)."""
        listed = f"{source}{SEP}{MARKERS}{partition}"
        kept = []
        for member in self.groups.get(listed) or []:
            key = f"{source}{SEP}{member}"
            entry: Entry | None = self.records.get(key)
            if entry is None or REMOVED not in entry or entry["p"] != partition:
                continue
            if expired(entry):
                self.records.delete(key)
            else:
                kept.append(member)
        if kept:
            self.groups.put(listed, kept)
        else:
            self.groups.delete(listed)

    def on_removed(self, msg: Removal, partition: int) -> Change | None:
        """A key the producer says is gone: removed unless already gone (a replay) or newer than the message."""
        key = f"{msg.source}{SEP}{msg.key}"
        entry: Entry | None = self.records.get(key)
        if entry is None or REMOVED in entry or entry["t"] > msg.at.timestamp():
            return None
        before = record_from_dict(entry["r"])
        self._remove(msg.source, before, snapshot=msg.snapshot, at=msg.at.timestamp(), partition=partition)
        if msg.baseline:
            return None
        return removal(before, at=msg.at, version=msg.version, profile=self._profiles(msg.dataset), floor=msg.floor)

    def _remove(self, source: str, before: Record, *, snapshot: str, at: float, partition: int) -> None:
        """The key becomes a removal entry (for one snapshot period) and leaves its entity."""
        self.records.put(f"{source}{SEP}{before.key}", {REMOVED: 1, "s": snapshot, "t": at, "p": partition})
        self._leave_group(source, before)
        listed = f"{source}{SEP}{MARKERS}{partition}"
        markers: list[str] = self.groups.get(listed) or []
        if before.key not in markers:
            self.groups.put(listed, [*markers, before.key])

    def _seen(self, key: str, entry: Entry, msg: RecordMessage, partition: int) -> None:
        """An unchanged record: the stored one stays (as in the embedded state), now seen in `msg`'s snapshot."""
        if entry["s"] == msg.snapshot and entry["p"] == partition:
            return  # seen already in this snapshot: a redelivery
        if entry["s"] == msg.snapshot:
            self.records.put(key, {**entry, "p": partition})
        else:
            self.records.put(key, {"r": entry["r"], "s": msg.snapshot, "t": msg.at.timestamp(), "p": partition})

    @staticmethod
    def _stored(entry: Entry | None, msg: RecordMessage, partition: int) -> Entry:
        new: Entry = {"r": record_to_dict(msg.record), "s": msg.snapshot, "t": msg.at.timestamp(), "p": partition}
        before = _before_snapshot(entry, msg.snapshot)
        if before is None or before["fingerprint"] != msg.record.fingerprint:
            new["b"] = before
        return new

    def _move(self, source: str, before: Record | None, after: Record) -> None:
        """Join the record's entity. A record that changed entity stays listed in its old one: the group must
        still show the state before the snapshot, and `_latest_before` checks each member's entity."""
        self._join_group(source, after)

    def _join_group(self, source: str, record: Record) -> None:
        key = f"{source}{SEP}{record.entity}"
        members: list[str] = self.groups.get(key) or []
        if record.key not in members:
            self.groups.put(key, sorted([*members, record.key]))

    def _leave_group(self, source: str, record: Record) -> None:
        key = f"{source}{SEP}{record.entity}"
        members = [k for k in self.groups.get(key) or [] if k != record.key]
        if members:
            self.groups.put(key, members)
        else:
            self.groups.delete(key)

    def _latest_before(self, msg: RecordMessage, profile: Profile) -> Record | None:
        """The entity's latest record before this snapshot, as `latest_by_group(previous)` would give it."""
        entity = msg.record.entity
        previous = []
        for member in self.groups.get(f"{msg.source}{SEP}{entity}") or []:
            data = _before_snapshot(self.records.get(f"{msg.source}{SEP}{member}"), msg.snapshot)
            if data is not None and (data.get("group") or data["key"]) == entity:
                previous.append(record_from_dict(data))
        return latest_by_group(previous, profile).get(entity)


class DictKV:
    """KV over a dict: the tests' state, and the staging area of a batch."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = {} if data is None else data

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        return ((k, v) for k, v in list(self.data.items()) if k.startswith(prefix))
