"""Keeps the distributed current-state view (Redis GEO) up to date from the `changes` topic.

One consumer group (`<app id>-view`) reads `changes`, folds each batch into the view of its dataset
(`CurrentView.apply`: newer-wins upserts and removals, so a batch replayed after a crash changes
nothing), appends the batch's published changes (not the held ones) to the change log of the catch-up feed
(streams/changelog_redis.py) when it has one, then commits the offsets. A message that cannot be read is
skipped here: the match agent, which reads the same topic, dead-letters it with the reason.

Redis or the broker going away does not stop it: it backs off (0.5 s doubling to 30 s) and resumes from the
committed offsets, reporting the problem meanwhile (the streams role's healthcheck fails while it lasts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError

from core.codec import CHANGE, change_from_dict, decode, read
from core.errors import EnvelopeError
from core.model import Change
from core.ports import CurrentView
from core.topology import is_held

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class ChangeAppender(Protocol):
    async def append(self, changes: Sequence[Change]) -> None: ...


def readable_changes(values: list[bytes | None]) -> list[Change]:
    changes = []
    for value in values:
        try:
            changes.append(read(decode(value), CHANGE, change_from_dict))
        except EnvelopeError as exc:
            log.debug("view updater skips an unreadable change: %s", exc)
    return changes


async def fold(views: Mapping[str, CurrentView], changes: list[Change]) -> int:
    """Apply changes to the view of their dataset, in order; datasets without a view are skipped."""
    by_dataset: defaultdict[str, list[Change]] = defaultdict(list)
    for change in changes:
        by_dataset[change.dataset].append(change)
    applied = 0
    for dataset, batch in by_dataset.items():
        view = views.get(dataset)
        if view is not None:
            applied += await view.apply(batch)
    return applied


Report = Callable[[str | None], None]


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt` + 1: 0.5 s doubling up to MAX_BACKOFF_S."""
    return float(min(MAX_BACKOFF_S, 0.5 * 2 ** min(attempt - 1, 10)))


def _ignore(problem: str | None) -> None:
    pass


class ViewUpdater:
    """`run(stop)` until `stop` is set. A failure (Redis or the broker down) never ends it: the consumer is closed,
    and after a backoff a new one resumes from the group's committed offsets, so the failed batch is folded in
    again. `report` hears the problem while it lasts (a string) and None once a batch goes through again."""

    def __init__(self, bootstrap: str, topic: str, group: str, views: Mapping[str, CurrentView], *,
                 batch: int = 500, report: Report = _ignore, log: ChangeAppender | None = None) -> None:
        self._views = views
        self._log = log
        self._batch = batch
        self._report = report
        self._consumer_args = {"bootstrap_servers": bootstrap, "group_id": group, "client_id": group}
        self._topic = topic
        self.consumed = 0
        self.failures = 0  # consecutive; 0 while the view keeps up
        self._progress = asyncio.Condition()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(self._topic, **self._consumer_args, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_min_bytes=64 * 1024,
                                fetch_max_wait_ms=100)  # the view may lag

    async def wait_consumed(self, n: int) -> None:
        """Until `n` messages have been folded in and committed (for tests and readiness)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.consumed >= n)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            consumer = self._consumer()
            try:
                await consumer.start()
                await self._loop(consumer, stop)
            except Exception as exc:  # Redis or the broker: retried, from the committed offsets
                await self._failed(exc, stop)
            finally:
                await consumer.stop()

    async def _failed(self, exc: Exception, stop: asyncio.Event) -> None:
        self.failures += 1
        delay = backoff(self.failures)
        problem = f"current-state view updater failing ({type(exc).__name__}: {exc}), attempt {self.failures}"
        self._report(problem)
        log.error("the current-state view updater failed; resuming from its committed offsets in %.1fs",
                  delay, exc_info=exc, extra={"attempt": self.failures})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    async def _loop(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            found = await consumer.getmany(timeout_ms=500, max_records=self._batch)
            messages = [m for batch in found.values() for m in batch]
            values = [m.value for m in messages]
            if values:
                applied = await fold(self._views, readable_changes(values))
                if self._log is not None:
                    await self._log.append(readable_changes([m.value for m in messages if not is_held(m)]))
                await _commit(consumer)
                log.debug("view updated: %d of %d changes applied", applied, len(values))
                async with self._progress:
                    self.consumed += len(values)
                    self._progress.notify_all()
            if self.failures and (values or await _caught_up(consumer)):
                log.warning("the current-state view updater is back after %d failure(s)", self.failures)
                self.failures = 0
                self._report(None)


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """True when the consumer owns partitions and has read each up to its high watermark."""
    assigned = consumer.assignment()
    for tp in assigned:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return bool(assigned)


async def _commit(consumer: AIOKafkaConsumer) -> None:
    """Commit what was folded in; after a rebalance the partitions' new owner folds them again (newer-wins: no
    harm), so a failed commit is no reason to restart."""
    try:
        await consumer.commit()
    except (CommitFailedError, IllegalStateError) as exc:
        log.warning("view offsets not committed after a rebalance (%s): their new owner reads them again",
                    type(exc).__name__)
