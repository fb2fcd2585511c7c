"""Positions: the stream worker processes each partition in order, heals holes by seeking, commits what it did."""

from __future__ import annotations

from dataclasses import dataclass

from streams.kafka_positions import MAX_SEEKS, Positions

TOPIC = "records.alimconfiance"


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Event:
    message: Message


def events(partition: int, *offsets: int) -> list[Event]:
    return [Event(Message(TOPIC, partition, o)) for o in offsets]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def offsets(admitted: list[Event]) -> list[tuple[int, int]]:
    return [(e.message.partition, e.message.offset) for e in admitted]


def test_in_order_events_are_admitted_and_committed_once_processed() -> None:
    positions = Positions(Clock())
    positions.reset({(TOPIC, 0): 10, (TOPIC, 1): 0})
    admitted = positions.admit([*events(0, 10, 11), *events(1, 0)])
    assert offsets(admitted.events) == [(0, 10), (0, 11), (1, 0)]
    assert admitted.seeks == {}
    assert positions.committable({}) == {(TOPIC, 0): 10, (TOPIC, 1): 0}  # nothing processed yet
    positions.processed(admitted.events)
    assert positions.committable({(TOPIC, 0): 10, (TOPIC, 1): 0}) == {(TOPIC, 0): 12, (TOPIC, 1): 1}


def test_replayed_events_are_skipped_and_other_partitions_ignored() -> None:
    positions = Positions(Clock())
    positions.reset({(TOPIC, 0): 5})
    admitted = positions.admit([*events(0, 3, 4, 5), *events(7, 0)])
    assert offsets(admitted.events) == [(0, 5)]


def test_a_hole_blocks_its_partition_and_asks_for_one_seek_until_it_is_due_again() -> None:
    clock = Clock()
    positions = Positions(clock, reseek_after=2.0)
    positions.reset({(TOPIC, 0): 5, (TOPIC, 1): 0})
    first = positions.admit([*events(0, 6, 7), *events(1, 0)])
    assert offsets(first.events) == [(1, 0)]
    assert first.seeks == {(TOPIC, 0): 5}
    assert positions.admit(events(0, 8)).seeks == {}  # sought already, the record is on its way
    clock.now = 2.5
    assert positions.admit(events(0, 9)).seeks == {(TOPIC, 0): 5}
    healed = positions.admit(events(0, 5, 6, 7))
    assert offsets(healed.events) == [(0, 5), (0, 6), (0, 7)]


def test_an_offset_that_never_comes_back_is_given_up_after_the_last_seek() -> None:
    clock = Clock()
    positions = Positions(clock, reseek_after=1.0)
    positions.reset({(TOPIC, 0): 0})
    for attempt in range(MAX_SEEKS):
        clock.now = attempt * 2.0
        assert positions.admit(events(0, 100)).seeks == {(TOPIC, 0): 0}
    assert offsets(positions.admit(events(0, 100)).events) == [(0, 100)]


def test_a_failed_batch_is_expected_again() -> None:
    positions = Positions(Clock())
    positions.reset({(TOPIC, 0): 0})
    admitted = positions.admit(events(0, 0, 1, 2))
    assert positions.rewind(admitted.events) == {(TOPIC, 0): 0}
    assert offsets(positions.admit(events(0, 0, 1)).events) == [(0, 0), (0, 1)]
    assert positions.committable({(TOPIC, 0): 0}) == {}


def test_a_partition_whose_records_stopped_coming_is_read_again_once_per_period() -> None:
    clock = Clock()
    positions = Positions(clock)
    positions.reset({(TOPIC, 0): 4, (TOPIC, 1): 0})
    positions.processed(positions.admit(events(0, 4, 5)).events)
    highwater = {(TOPIC, 0): 9, (TOPIC, 1): 0}.get
    clock.now = 5.0
    assert positions.stalled(highwater, after=10.0) == {}
    clock.now = 10.0
    assert positions.stalled(highwater, after=10.0) == {(TOPIC, 0): 6}  # partition 1 has nothing waiting
    clock.now = 15.0
    assert positions.stalled(highwater, after=10.0) == {}
    assert offsets(positions.admit(events(0, 6)).events) == [(0, 6)]


def test_lag_is_the_fetched_end_minus_what_was_processed() -> None:
    positions = Positions(Clock())
    positions.reset({(TOPIC, 0): 10, (TOPIC, 1): 0, (TOPIC, 2): 4})
    positions.processed(events(0, 10, 11))
    ends = {(TOPIC, 0): 20, (TOPIC, 1): None, (TOPIC, 2): 4}
    assert positions.lag(ends.get) == {(TOPIC, 0): 8, (TOPIC, 2): 0}  # partition 1 not fetched yet: left out
