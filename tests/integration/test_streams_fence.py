"""The stream worker's rebalance fence (streams/faust_app.py), on a real faust app that is never started.

faust waits for its agents before a rebalance only for events acked through it, and the worker's are not, so the
worker fences its own batches: a revocation waits (bounded) for the batch in flight, a batch still running after
that wait writes no state, and no batch starts while faust restores the tables. Without the fence, a batch writing
state during the new owner's changelog replay was seen to regress the diff state, and the next snapshot-end marker
then announced hundreds of false removals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from streams.bus.kafka import KafkaBus
from streams.faust_app import Streams, StreamsConfig
from tests.integration.test_kafka_positions import TOPIC, events

TP = (TOPIC, 0)


@dataclass
class Worker:
    streams: Streams
    commits: list[dict[tuple[str, int], int]]


@pytest.fixture
async def worker() -> Worker:
    conf = StreamsConfig("fence-test", "127.0.0.1:1", ["alimconfiance"], session_timeout=0.4)
    streams = Streams(conf, KafkaBus("127.0.0.1:1"))
    commits: list[dict[tuple[str, int], int]] = []

    async def commit() -> None:  # what the worker would commit to Kafka at that moment
        commits.append(dict(streams.positions.done))

    streams._commit = commit  # type: ignore[method-assign]
    streams.positions.reset({TP: 0})
    streams._assigned.set()
    streams.app.rebalancing = False
    return Worker(streams, commits)


async def revoke(streams: Streams) -> None:
    await streams._on_revoked(streams.app, set(), signal=None)


async def test_a_revocation_waits_for_the_batch_in_flight_and_commits_it(worker: Worker) -> None:
    release, wrote = asyncio.Event(), []

    async def process(batch: Sequence[Any], generation: int) -> None:
        await release.wait()
        worker.streams._fence(generation)
        wrote.append(len(batch))

    batch = asyncio.create_task(worker.streams._batch(events(0, 0, 1, 2), process))
    await asyncio.sleep(0.01)
    revoking = asyncio.create_task(revoke(worker.streams))
    await asyncio.sleep(0.05)
    assert not revoking.done(), "the revocation must wait for the batch in flight"
    release.set()
    await asyncio.wait_for(asyncio.gather(batch, revoking), 5)
    assert wrote == [3]
    assert worker.commits == [{TP: 3}], "what the batch processed is committed before the partitions leave"


async def test_a_batch_still_running_after_the_wait_writes_no_state(worker: Worker) -> None:
    release, wrote = asyncio.Event(), []

    async def process(batch: Sequence[Any], generation: int) -> None:
        await release.wait()
        worker.streams._fence(generation)  # raises: the rebalance began
        wrote.append(len(batch))

    batch = asyncio.create_task(worker.streams._batch(events(0, 0, 1), process))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(revoke(worker.streams), 5)  # gives up waiting after session_timeout / 2
    release.set()
    await asyncio.wait_for(batch, 5)
    assert wrote == []
    assert worker.streams.positions.done == {TP: 0}, "a fenced batch is read again by the next owner"
    assert worker.commits == [{TP: 0}]


async def test_no_batch_starts_while_faust_restores_the_tables(worker: Worker) -> None:
    started = asyncio.Event()

    async def process(batch: Sequence[Any], generation: int) -> None:
        started.set()

    worker.streams.app.rebalancing = True  # set by faust from the revocation until recovery is over
    batch = asyncio.create_task(worker.streams._batch(events(0, 0), process))
    await asyncio.sleep(0.2)
    assert not started.is_set()
    worker.streams.app.rebalancing = False
    await asyncio.wait_for(batch, 5)
    assert started.is_set()
    assert worker.streams.positions.done == {TP: 1}
