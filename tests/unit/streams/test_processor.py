"""The embedded processor over a real SQLite file: baseline, alerts, incomplete snapshots, outbox order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.geo import AdminArea, AdminCodes, Circle, Everywhere
from core.index import SubscriptionIndex
from core.model import Filter, Record, Subscription
from core.ports import Quarantined, Snapshot
from core.profiles import profile_for
from notifiers.outbox_sqlite import SqliteOutbox
from streams.processor import Processor
from streams.sqlite import Database, StateStore
from tests.unit.core.factories import AT, LYON, PARIS, inspection

SOURCE = "ods+https://portal.example/export_alimconfiance"
PARIS_1KM = Subscription("paris", Circle(PARIS, 1000), "webhook+https://a.example/h", secret="whsec_x")
URGENT = Subscription("urgent", Everywhere(), "console://", Filter(min_rating=4))
DEP_69 = Subscription("dep69", AdminArea("departement", "69"), "console://")
SUBS = SubscriptionIndex([PARIS_1KM, URGENT, DEP_69])


def snap(records: list[Record], version: str, *, complete: bool = True, problem: str | None = None,
         quarantined: list[Quarantined] | None = None) -> Snapshot:
    return Snapshot("alimconfiance", SOURCE, records, complete, version, quarantined or [], problem)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database(f"sqlite:///{tmp_path / 'state.db'}").open()
    yield database
    await database.close()


def processor(db: Database) -> Processor:
    return Processor(StateStore(db), profiles=profile_for)


BASE = [inspection(f"k{i}", entity=f"e{i}", date=f"2025-0{i}-01") for i in range(1, 6)]


async def test_first_snapshot_is_a_baseline_that_alerts_nobody(db: Database) -> None:
    outcome = await processor(db).process(snap(BASE, "v1"), SUBS, at=AT)
    assert outcome.baseline
    assert len(outcome.changes) == 5
    assert outcome.deliveries == []
    assert await SqliteOutbox(db).counts() == {}
    assert set(await StateStore(db).load(SOURCE)) == {r.key for r in BASE}


async def test_changes_after_the_baseline_reach_only_matching_subscriptions(db: Database) -> None:
    proc = processor(db)
    await proc.process(snap(BASE, "v1"), SUBS, at=AT)
    urgent_in_lyon = inspection("k9", entity="e9", date="2025-06-01", rating=4, point=LYON,
                                admin=AdminCodes(departement="69"))
    outcome = await proc.process(snap([*BASE[1:], urgent_in_lyon], "v2"), SUBS, at=AT + timedelta(days=7))
    assert outcome.counts() == {"created": 1, "removed": 1}
    by_sub = sorted((d.subscription.id, d.change.key) for d in outcome.deliveries)
    assert by_sub == [("dep69", "k9"), ("paris", "k1"), ("urgent", "k9")]
    pending = await SqliteOutbox(db).pending(10, AT + timedelta(days=7))
    assert [d.key for d, _ in pending] == [d.key for d in outcome.deliveries]
    assert pending[0][0].subscription.secret in {None, "whsec_x"}


async def test_incomplete_or_suspiciously_small_snapshots_remove_nothing(db: Database) -> None:
    proc = processor(db)
    await proc.process(snap(BASE, "v1"), SUBS, at=AT)
    truncated = await proc.process(snap(BASE[:4], "v2", complete=False, problem="body truncated"), SUBS, at=AT)
    assert truncated.changes == []
    assert truncated.problem == "body truncated"
    tiny = await proc.process(snap(BASE[:1], "v3"), SUBS, at=AT)
    assert tiny.changes == []
    assert tiny.problem is not None
    assert "fewer than 50%" in tiny.problem
    health = await StateStore(db).source(SOURCE)
    assert health is not None
    assert (health.version, health.healthy) == ("v1", False)  # next poll downloads again


async def test_replaying_an_uncommitted_snapshot_gives_the_same_delivery_keys(tmp_path: Path) -> None:
    keys = []
    for run in range(2):
        database = await Database(f"sqlite:///{tmp_path / f'run{run}.db'}").open()
        proc = processor(database)
        await proc.process(snap(BASE, "v1"), SUBS, at=AT)
        outcome = await proc.process(snap(BASE[1:], "v2"), SUBS, at=AT + timedelta(hours=run))
        keys.append(sorted(d.key for d in outcome.deliveries))
        await database.close()
    assert keys[0] == keys[1]
    assert keys[0]


async def test_quarantined_rows_are_stored_with_their_reason(db: Database) -> None:
    bad = [Quarantined(SOURCE, "bad coordinates: 'abc'", {"geores": "abc"})]
    outcome = await processor(db).process(snap(BASE, "v1", quarantined=bad), SUBS, at=AT)
    assert outcome.quarantined == 1
    assert await StateStore(db).quarantined() == [(SOURCE, "bad coordinates: 'abc'", {"geores": "abc"})]


async def test_outbox_keeps_order_per_subscription_across_retries(db: Database) -> None:
    proc = processor(db)
    await proc.process(snap(BASE, "v1"), SUBS, at=AT)
    outcome = await proc.process(snap([], "v2", complete=True), SubscriptionIndex([PARIS_1KM]), at=AT)
    assert outcome.problem is not None  # an empty snapshot is never trusted
    first, second = (inspection(f"n{i}", entity=f"n{i}", date=f"2025-06-0{i}") for i in (1, 2))
    outcome = await proc.process(snap([*BASE, first, second], "v3"), SubscriptionIndex([PARIS_1KM]), at=AT)
    outbox = SqliteOutbox(db)
    d1, d2 = outcome.deliveries
    await outbox.failed(d1.key, 1, "HTTP 503", AT + timedelta(minutes=5))
    assert await outbox.pending(10, AT) == []  # the second waits behind the first
    due = await outbox.pending(10, AT + timedelta(minutes=5))
    assert [(d.key, attempts) for d, attempts in due] == [(d1.key, 1), (d2.key, 0)]
    await outbox.delivered(d1.key, AT)
    await outbox.failed(d2.key, 8, "HTTP 400", None)
    assert await outbox.counts() == {"delivered": 1, "dead": 1}


async def test_the_current_view_follows_every_commit(db: Database) -> None:
    proc = processor(db)
    await proc.process(snap(BASE, "v1"), SUBS, at=AT)
    view = await proc.view("alimconfiance")
    assert {r.key for r, _ in await view.near(PARIS.lat, PARIS.lon, 1000)} == {r.key for r in BASE}
    later = inspection("k6", entity="e1", date="2025-09-01", rating=4)
    await proc.process(snap([*BASE[1:], later], "v2"), SUBS, at=AT)
    shown = await view.get("e1")
    assert shown is not None
    assert shown.key == "k6"
    assert [r.key for r, _ in await view.near(PARIS.lat, PARIS.lon, 1000, max_rating=2)] == [
        r.key for r in BASE[1:]]
