"""A source that keeps failing or stops updating: one notice to every subscriber of its dataset when the incident
starts, none while it lasts, one when it ends (embedded runtime, a local portal and a fake clock).

The portal is the local Opendatasoft stand-in serving real Alim'Confiance rows; it answers 403 when told to fail.
`vigie sources` shows the open incident.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.geo import AdminArea, Everywhere
from core.model import Filter, Subscription
from runtime.demo.portal import FakePortal
from runtime.demo.snapshots import DATASET_ID, load_rows
from runtime.embedded import Embedded
from runtime.settings import Settings
from streams.processor import Outcome
from streams.sqlite import Database, StateStore
from subscriptions.sqlite import SqliteSubscriptionStore

VIGIE = Path(sys.executable).parent / "vigie"
T0 = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)
SUBSCRIPTIONS = [Subscription("sub_all", Everywhere(), "console://"),
                 Subscription("sub_gironde", AdminArea("departement", "33"), "console://",
                              Filter(kinds=frozenset({"downgrade"}))),
                 Subscription("sub_other", Everywhere(), "console://", Filter(datasets=frozenset({"other"})))]
TOLD = ["sub_all", "sub_gironde"]


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def portal() -> AsyncIterator[FakePortal]:
    async with FakePortal() as running:
        yield running


async def started(tmp_path: Path, portal: FakePortal) -> tuple[Settings, str]:
    url = portal.url_for(DATASET_ID)
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", sources=[url], failing_after=3,
                        stale_after="10d")
    store = SqliteSubscriptionStore(settings.subscription_store)
    for subscription in SUBSCRIPTIONS:
        await store.put(subscription)
    await store.aclose()
    portal.publish(DATASET_ID, load_rows()[:50], modified=T0 - timedelta(days=1))
    return settings, url


def told(outcome: Outcome) -> tuple[str | None, list[str]]:
    """The notice a poll sent, if any, and to whom."""
    kind = None if outcome.notice is None else outcome.notice.kind
    return kind, sorted(d.subscription.id for d in outcome.deliveries if d.change is outcome.notice)


async def poll(running: Embedded, clock: Clock, url: str, *, days: float = 1) -> Outcome:
    clock.now += timedelta(days=days)
    return await running._poll_safely(url)


async def vigie_sources(settings: Settings, *args: str) -> str:
    env = {**os.environ, "VIGIE_STATE": settings.state, "VIGIE_LOG_LEVEL": "WARNING", "COLUMNS": "250"}
    proc = await asyncio.create_subprocess_exec(str(VIGIE), "sources", *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, output.decode()
    return output.decode()


async def test_a_failing_source_is_told_once_when_it_starts_and_once_when_it_ends(portal: FakePortal,
                                                                                  tmp_path: Path) -> None:
    settings, url = await started(tmp_path, portal)
    clock = Clock()
    async with Embedded(settings, clock=clock) as running:
        assert told(await poll(running, clock, url)) == (None, [])  # the baseline
        seen = []
        for _ in range(5):
            portal.fail_next(403, endpoint="metadata")
            seen.append(told(await poll(running, clock, url)))
        assert seen == [(None, []), (None, []), ("source_failing", TOLD), (None, []), (None, [])]
        [source] = json.loads(await vigie_sources(settings, "--json"))
        assert (source["healthy"], source["incident"], source["failures"]) == (False, "failing", 5)
        assert source["incident_since"] == (T0 + timedelta(days=2)).isoformat(timespec="microseconds")
        assert "failing since 2025-06-04" in await vigie_sources(settings)
        assert told(await poll(running, clock, url)) == ("source_recovered", TOLD)
        assert told(await poll(running, clock, url)) == (None, [])
        [source] = json.loads(await vigie_sources(settings, "--json"))
        assert (source["healthy"], source["incident"], source["failures"]) == (True, None, 0)
        queued = await running.outbox.pending(1000, clock.now)
    kinds = sorted((d.change.kind, d.subscription.id) for d, _ in queued)
    assert kinds == sorted((k, s) for k in ("source_failing", "source_recovered") for s in TOLD)


async def test_a_dataset_with_no_new_version_for_too_long_is_stale_until_it_publishes(portal: FakePortal,
                                                                                     tmp_path: Path) -> None:
    settings, url = await started(tmp_path, portal)
    clock = Clock()
    async with Embedded(settings, clock=clock) as running:
        await poll(running, clock, url)
        seen = [told(await poll(running, clock, url, days=days)) for days in (4, 6, 0.5, 1)]
        assert seen == [(None, []), (None, []), ("source_stale", TOLD), (None, [])]
        assert "stale since 2025-06-03" in await vigie_sources(settings)
        portal.publish(DATASET_ID, load_rows()[:51], modified=clock.now)
        assert told(await poll(running, clock, url)) == ("source_recovered", TOLD)


async def test_a_poll_done_again_tells_nobody_twice(portal: FakePortal, tmp_path: Path) -> None:
    """The poll that opened an incident, done again from the state before it (as after a crash), finds the same
    incident: the same notice ids, so each subscriber has one delivery."""
    settings, url = await started(tmp_path, portal)
    clock = Clock()
    async with Embedded(settings, clock=clock) as running:
        await poll(running, clock, url)
        for _ in range(2):
            portal.fail_next(403, endpoint="metadata")
            await poll(running, clock, url)
        before = await running.state.source(url)
        assert before is not None
        portal.fail_next(403, endpoint="metadata")
        first = await poll(running, clock, url)
        await running.state.record_health(before)
        portal.fail_next(403, endpoint="metadata")
        again = await poll(running, clock, url, days=0.01)
        queued = await running.outbox.pending(1000, clock.now)
    assert first.notice is not None
    assert again.notice is not None
    assert again.notice.id == first.notice.id
    assert sorted(d.subscription.id for d, _ in queued) == TOLD


async def test_an_older_database_gets_the_incident_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sources (url TEXT PRIMARY KEY, version TEXT, healthy INTEGER NOT NULL DEFAULT 1, "
                     "problem TEXT, checked_at TEXT, rows INTEGER)")
        conn.execute("INSERT INTO sources VALUES ('ods+https://p/x', 'v1', 0, 'HTTP 503', '2025-06-01', 12)")
    conn.close()
    db = await Database(f"sqlite:///{path}").open()
    try:
        [source] = await StateStore(db).sources()
    finally:
        await db.close()
    assert (source.version, source.healthy, source.incident, source.failures, source.fresh_at) == \
        ("v1", False, None, 0, None)
