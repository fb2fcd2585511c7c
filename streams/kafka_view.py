"""Keeps the distributed current-state view (Redis GEO) up to date from the `changes` topic.

One consumer group (`<app id>-view`) reads `changes`, folds each batch into the view of its dataset
(`CurrentView.apply`: newer-wins upserts and removals, so a batch replayed after a crash changes
nothing), then commits the offsets. A message that cannot be read is skipped here: the match agent,
which reads the same topic, dead-letters it with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer

from core.codec import CHANGE, change_from_dict, decode, read
from core.errors import EnvelopeError
from core.model import Change
from core.ports import CurrentView

log = logging.getLogger(__name__)


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


class ViewUpdater:
    def __init__(self, bootstrap: str, topic: str, group: str, views: Mapping[str, CurrentView], *,
                 batch: int = 500) -> None:
        self._views = views
        self._batch = batch
        self.consumed = 0
        self._progress = asyncio.Condition()
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          fetch_min_bytes=64 * 1024, fetch_max_wait_ms=100)  # the view may lag

    async def wait_consumed(self, n: int) -> None:
        """Until `n` messages have been folded in and committed (for tests and readiness)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.consumed >= n)

    async def run(self, stop: asyncio.Event) -> None:
        await self._consumer.start()
        try:
            await self._loop(stop)
        except Exception:
            log.exception("the current-state view updater stopped")
            raise
        finally:
            await self._consumer.stop()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            found = await self._consumer.getmany(timeout_ms=500, max_records=self._batch)
            values = [m.value for messages in found.values() for m in messages]
            if values:
                applied = await fold(self._views, readable_changes(values))
                await self._consumer.commit()
                log.debug("view updated: %d of %d changes applied", applied, len(values))
                async with self._progress:
                    self.consumed += len(values)
                    self._progress.notify_all()
