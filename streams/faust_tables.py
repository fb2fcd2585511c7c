"""Table writes of a batch, staged and then applied with their own event made current.

`Staged` is a `kafka_diff.KV` over a faust Table: reads go to the store with the reading event's partition made
current (stores that shard by partition, rocksdb, read that partition's db); writes wait in memory until
`commit()`, which applies them to the store and returns their changelog messages, each to the partition of the
event that made it, serialized as faust's own writes are. The worker sends those with its own producer and waits
for every acknowledgement before the batch counts as processed (see faust_app.Streams.diff_batch).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from faust.streams import _current_event
from faust.types import TP

from streams.bus.kafka import Outgoing

_DELETED = object()


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
        # the store itself (Table.get adds a sensor call, and a KeyError per miss), read with the event's own
        # partition made current: a store sharded by partition (rocksdb) then reads that partition's db only,
        # rather than the first db that has the key (standby and revoked partitions' dbs included)
        if self.event is None:
            return self.table.data.get(key)
        with _as_current(self.event):
            return self.table.data.get(key)

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

    def commit(self) -> list[Outgoing]:
        """Apply the staged writes to the table's store; their changelog messages, each to the partition of the
        event that made it, serialized by the changelog topic as faust's own writes are (a delete: a tombstone).

        This is what `table[key] = value` does (faust's Table.on_key_set) minus the sensors, without faust's
        producer buffer: the worker sends these with its own producer and waits for every acknowledgement before
        the batch counts as processed (see Streams.diff_batch); faust's buffer flushes in bursts that held the
        agents back, and its flush before an offset commit may give up early under load.
        """
        writes, self._writes = self._writes, {}
        topic = self.table.changelog_topic
        name, out = topic.get_topic_name(), []
        for key, (event, value) in writes.items():
            partition = event.message.partition
            raw_key, _ = topic.prepare_key(key, self.table.key_serializer)
            with _as_current(event):  # stores that shard by partition (rocksdb) read it from the current event
                if value is _DELETED:
                    self.table.data.pop(key, None)
                    out.append(Outgoing(name, None, key=raw_key, partition=partition))
                else:
                    self.table.data[key] = value
                    raw_value, _ = topic.prepare_value(value, self.table.value_serializer)
                    out.append(Outgoing(name, raw_value, key=raw_key, partition=partition))
        return out

    def persisted(self, sent: Sequence[Outgoing], metadata: Sequence[Any]) -> None:
        """Tell the store the changelog offsets its writes reached (rocksdb keeps them to replay less at start)."""
        last: dict[int, int] = {}
        for message, meta in zip(sent, metadata, strict=True):
            if message.topic == self.table.changelog_topic_name and message.partition is not None:
                last[message.partition] = max(last.get(message.partition, -1), meta.offset)
        for partition, offset in last.items():
            self.table.data.set_persisted_offset(TP(self.table.changelog_topic_name, partition), offset)
