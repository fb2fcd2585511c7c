"""Process each partition's records in order, without holes, on top of faust's consumer.

faust commits, per partition, the run of acked offsets that starts at the *first acked one*: it only checks that
run against the committed offset when there is one, and lets one offset slip (`_new_offset` accepts an acked
offset of committed + 1). Around a rebalance, records fetched before it can still reach an agent after the
partition was sought back to its committed offset; they move faust's read offset forward, the re-fetched head
record is then dropped as already read, and the commit jumps over it. Observed on a real broker with two workers:
a record of the baseline never reached the diff state, and the next snapshot announced it as new.

So the worker does not let faust commit the agents' topics at all (their faust topics have `acks=False`) and
commits them itself from `Positions`: for every partition of the current assignment it knows the next offset to
process (the group's committed offset, or the start of the log) and the next offset *processed* (`done`, what gets
committed). An agent processes an event only when it is the expected offset. An earlier offset was processed
already and is skipped; a later one means a hole: the partition is read again from the expected offset (faust's
consumer may need a few seeks while records fetched before the first one drain), and the events behind the hole
wait for their turn. Offsets that no longer exist (retention) are given up after `MAX_SEEKS` attempts, loudly.
The class is pure; faust_app.py wires it to the rebalance signals, `Consumer.seek` and the offset commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Partition = tuple[str, int]
MAX_SEEKS = 10


@dataclass(frozen=True, slots=True)
class Admitted:
    events: list[Any]
    seeks: dict[Partition, int]


@dataclass
class _Pending:
    offset: int
    since: float
    seeks: int = 1


@dataclass
class Positions:
    """The next offset to process, per partition of the current assignment."""

    clock: Callable[[], float]
    reseek_after: float = 2.0
    expected: dict[Partition, int] = field(default_factory=dict)
    done: dict[Partition, int] = field(default_factory=dict)
    _pending: dict[Partition, _Pending] = field(default_factory=dict)
    _moved: dict[Partition, float] = field(default_factory=dict)

    def reset(self, expected: Mapping[Partition, int]) -> None:
        """A new assignment: these partitions, from these offsets."""
        self.expected = dict(expected)
        self.done = dict(expected)
        self._pending.clear()
        now = self.clock()
        self._moved = dict.fromkeys(expected, now)

    def processed(self, events: Iterable[Any]) -> None:
        """`events` (admitted ones) are fully processed: their offsets may be committed."""
        now = self.clock()
        for event in events:
            tp = (event.message.topic, event.message.partition)
            if tp in self.done:
                self.done[tp] = max(self.done[tp], event.message.offset + 1)
                self._moved[tp] = now

    def lag(self, highwater: Callable[[Partition], int | None]) -> dict[Partition, int]:
        """Records not processed yet per assigned partition: the consumer's last fetched end of the partition
        (`highwater`, None before its first fetch: left out) minus the next offset to process."""
        ends = {tp: highwater(tp) for tp in self.done}
        return {tp: max(end - self.done[tp], 0) for tp, end in ends.items() if end is not None}

    def stalled(self, highwater: Callable[[Partition], int | None], after: float) -> dict[Partition, int]:
        """Partitions with records waiting that made no progress for `after` seconds (a fetch that went quiet
        after a rebalance): the offsets to read them again from. Each is reported once per `after` seconds."""
        now, found = self.clock(), {}
        for tp, done in self.done.items():
            end = highwater(tp)
            if end is not None and end > done and now - self._moved.get(tp, now) >= after:
                found[tp] = self.expected[tp] = done
                self._pending.pop(tp, None)
                self._moved[tp] = now
        return found

    def admit(self, events: Iterable[Any]) -> Admitted:
        """The events to process now, in order, and the partitions to read again from an offset."""
        accepted: list[Any] = []
        seeks: dict[Partition, int] = {}
        blocked: set[Partition] = set()
        for event in events:
            tp = (event.message.topic, event.message.partition)
            verdict = self._verdict(tp, event.message.offset, blocked)
            if verdict == "accept":
                accepted.append(event)
            elif verdict == "hole":
                blocked.add(tp)
                if (seek := self._seek(tp)) is not None:
                    seeks[tp] = seek
        return Admitted(accepted, seeks)

    def _verdict(self, tp: Partition, offset: int, blocked: set[Partition]) -> str:
        expected = self.expected.get(tp)
        if expected is None or tp in blocked or offset < expected:
            return "skip"  # not ours (any more), behind a hole, or processed already
        if offset > expected:
            pending = self._pending.get(tp)
            if pending is None or pending.seeks < MAX_SEEKS:
                return "hole"
            log.error("offsets %d-%d of %s[%d] did not come back after %d seeks: going on from %d", expected,
                      offset - 1, tp[0], tp[1], MAX_SEEKS, offset, extra={"topic": tp[0], "partition": tp[1]})
        self.expected[tp] = offset + 1
        self._pending.pop(tp, None)
        return "accept"

    def _seek(self, tp: Partition) -> int | None:
        """Seek once per hole, again if the expected record has not come after `reseek_after` seconds."""
        now, expected = self.clock(), self.expected[tp]
        pending = self._pending.get(tp)
        if pending is not None and pending.offset == expected and now - pending.since < self.reseek_after:
            return None
        seeks = pending.seeks + 1 if pending is not None and pending.offset == expected else 1
        self._pending[tp] = _Pending(expected, now, seeks)
        return expected

    def rewind(self, events: Sequence[Any]) -> dict[Partition, int]:
        """Processing of `events` failed: expect each partition's first one again; the offsets to seek to."""
        seeks: dict[Partition, int] = {}
        for event in events:
            tp = (event.message.topic, event.message.partition)
            seeks.setdefault(tp, event.message.offset)
        for tp, offset in seeks.items():
            if tp in self.expected:
                self.expected[tp] = min(self.expected[tp], offset)
        return seeks

    def committable(self, last: Mapping[Partition, int]) -> dict[Partition, int]:
        """The processed positions that moved since `last` (what was committed before)."""
        return {tp: offset for tp, offset in self.done.items() if last.get(tp) != offset}
