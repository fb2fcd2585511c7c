"""The periodic republish of subscription writes left pending, over a stand-in store (the real one: Redis and
Kafka, in tests/integration/test_api_republish.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from core.errors import PublishError
from runtime.republish import republish_forever, republish_once, republisher, republishing
from subscriptions.sqlite import SqliteSubscriptionStore


class PendingWrites:
    """A store's republishing side: `pending` ids, sent (and cleared) by each round unless `down`."""

    def __init__(self, *pending: str, publishing: bool = True) -> None:
        self.pending = list(pending)
        self.publishing = publishing
        self.down = False
        self.rounds = 0
        self._round = asyncio.Condition()

    async def republish_pending(self) -> list[str]:
        async with self._round:
            self.rounds += 1
            self._round.notify_all()
        if self.down:
            raise PublishError("broker unreachable", retriable=True)
        sent, self.pending = self.pending, []
        return sent

    async def republish_all(self) -> int:
        return len(await self.republish_pending())

    async def rounds_reach(self, count: int) -> None:
        async with self._round:
            await asyncio.wait_for(self._round.wait_for(lambda: self.rounds >= count), 5)


async def test_only_a_store_that_publishes_is_republished(tmp_path: Path) -> None:
    sqlite = SqliteSubscriptionStore(f"sqlite:///{tmp_path / 'vigie.db'}")
    try:
        assert republisher(sqlite) is None
    finally:
        await sqlite.aclose()
    assert republisher(PendingWrites(publishing=False)) is None
    store = PendingWrites()
    assert republisher(store) is store


async def test_a_round_logs_what_it_published(caplog: pytest.LogCaptureFixture) -> None:
    ids = [f"sub_{i:02}" for i in range(25)]
    with caplog.at_level(logging.WARNING, logger="runtime.republish"):
        assert await republish_once(PendingWrites(*ids)) == ids
    [record] = caplog.records
    assert record.getMessage().startswith("published 25 pending subscription write(s): sub_00, sub_01, ")
    assert record.getMessage().endswith("sub_19, …")
    assert record.__dict__["republished"] == 25


async def test_a_failed_round_is_logged_and_leaves_the_writes_pending(caplog: pytest.LogCaptureFixture) -> None:
    store = PendingWrites("sub_a")
    store.down = True
    with caplog.at_level(logging.WARNING, logger="runtime.republish"):
        assert await republish_once(store) == []
    assert store.pending == ["sub_a"]
    assert "republishing failed (broker unreachable)" in caplog.text


async def test_a_quiet_round_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="runtime.republish"):
        assert await republish_once(PendingWrites()) == []
    assert caplog.records == []


async def test_rounds_repeat_through_failures_until_cancelled() -> None:
    store = PendingWrites("sub_a")
    store.down = True
    task = asyncio.create_task(republish_forever(store, interval_s=0.01))
    try:
        await store.rounds_reach(2)
        assert store.pending == ["sub_a"]
        store.down = False
        await store.rounds_reach(store.rounds + 2)  # a whole round after the broker came back
        assert store.pending == []
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_cleanup_context_runs_a_round_at_start_and_stops_at_shutdown() -> None:
    store = PendingWrites("sub_a")
    context = republishing(store, interval_s=3600)(object())
    await anext(context)
    await store.rounds_reach(1)
    assert store.pending == []
    running = [t for t in asyncio.all_tasks() if t.get_name() == "republish-subscriptions"]
    assert len(running) == 1
    with pytest.raises(StopAsyncIteration):
        await anext(context)
    assert running[0].cancelled()
