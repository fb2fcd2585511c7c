"""The embedded runtime end to end on real Alim'Confiance rows, as `vigie run --once --json` in a subprocess.

Expected changes and deliveries are computed here, independently, from the two raw snapshots; the
local webhook receiver verifies every signature with `standardwebhooks`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.geo import AdminArea, Area, Circle, Everywhere, Point
from core.model import Filter, Subscription
from notifiers import new_secret
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, DemoStory, build_snapshots
from subscriptions.sqlite import SqliteSubscriptionStore

pytestmark = pytest.mark.slow
PARIS = (48.8566, 2.3522)
URGENT = "A corriger de manière urgente"
Row = dict[str, Any]


@pytest.fixture(scope="module")
def story() -> DemoStory:
    return build_snapshots()


def identity(row: Row) -> tuple[str, str, str]:
    return row["numero_inspection"], row["siret"], row["date_inspection"]


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine, written out here so the test does not lean on core.geo."""
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


@dataclass
class Expected:
    ops: dict[str, int]
    rows: dict[str, list[Row]]  # op -> the current side of each change (after, or before when removed)

    def current(self) -> list[Row]:
        return [row for rows in self.rows.values() for row in rows]


def expected_changes(story: DemoStory) -> Expected:
    before = {identity(r): r for r in story.first.rows}
    after = {identity(r): r for r in story.second.rows}
    created = [after[k] for k in after.keys() - before.keys()]
    removed = [before[k] for k in before.keys() - after.keys()]
    updated = [after[k] for k in after.keys() & before.keys() if after[k] != before[k]]
    rows = {"created": created, "updated": updated, "removed": removed}
    return Expected({op: len(found) for op, found in rows.items()}, rows)


def near_paris(row: Row) -> bool:
    geo = row.get("geores")
    return geo is not None and metres(PARIS, (geo["lat"], geo["lon"])) <= 2000


RULES: dict[str, Callable[[Row], bool]] = {
    "paris": near_paris,
    "herault": lambda row: str(row.get("code_postal", "")).startswith("34"),
    "urgent": lambda row: row.get("synthese_eval_sanit") == URGENT,
    "atlantic": lambda row: False,
}


@dataclass
class Rig:
    portal: FakePortal
    receiver: WebhookReceiver
    env: dict[str, str]


@pytest.fixture
async def rig(tmp_path: Path, story: DemoStory) -> AsyncIterator[Rig]:
    async with FakePortal() as portal:
        receiver = WebhookReceiver()
        await receiver.start()
        portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
        state = f"sqlite:///{tmp_path / 'vigie.db'}"
        store = SqliteSubscriptionStore(state)
        areas: dict[str, Area] = {"paris": Circle(Point(*PARIS), 2000), "herault": AdminArea("departement", "34"),
                 "urgent": Everywhere(), "atlantic": Circle(Point(47.0, -8.0), 1000)}
        for name, area in areas.items():
            secret = new_secret()
            url = receiver.add_endpoint(name, secret).replace("http://", "webhook+http://", 1)
            await store.put(Subscription(name, area, url, Filter(min_rating=4 if name == "urgent" else None),
                                         secret=secret))
        await store.aclose()
        env = {**os.environ, "VIGIE_STATE": state, "VIGIE_SOURCES": portal.url_for(DATASET_ID),
               "VIGIE_LOG_LEVEL": "WARNING"}
        yield Rig(portal, receiver, env)
        await receiver.close()


async def start_vigie(rig: Rig) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime.cli", "run", "--once", "--json", env=rig.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def run_once(rig: Rig) -> dict[str, Any]:
    process = await start_vigie(rig)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def received_by_endpoint(receiver: WebhookReceiver) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {name: Counter() for name in RULES}
    for event in receiver.received:
        found[event.endpoint][event.event["subject"]] += 1
    return found


def expected_by_endpoint(expected: Expected) -> dict[str, Counter[str]]:
    return {name: Counter("|".join((r["numero_inspection"], r["siret"], r["date_inspection"][:10]))
                          for r in expected.current() if rule(r)) for name, rule in RULES.items()}


async def test_two_real_snapshots_alert_exactly_the_matching_subscriptions(rig: Rig, story: DemoStory) -> None:
    baseline = await run_once(rig)
    assert baseline["changes"]["created"] == len(story.first.rows)
    assert (baseline["deliveries"], len(rig.receiver.received)) == (0, 0)

    rig.portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
    summary = await run_once(rig)
    expected = expected_changes(story)
    assert summary["changes"] == expected.ops
    assert summary["quarantined"] == 0
    withdrawn = sum(1 for e in story.edits if e.kind == "removed")
    assert summary["kinds"]["removed"] == withdrawn
    assert summary["kinds"]["aged_out"] == expected.ops["removed"] - withdrawn
    assert summary["kinds"]["new_inspection"] == expected.ops["created"]
    assert {"downgrade", "upgrade"} <= summary["kinds"].keys()

    wanted = expected_by_endpoint(expected)
    got = received_by_endpoint(rig.receiver)
    assert got == wanted
    assert sum(len(c) for c in wanted.values()) == summary["deliveries"] == summary["delivered"]
    assert all(wanted[name] for name in ("paris", "herault", "urgent"))
    assert not wanted["atlantic"]
    assert (rig.receiver.rejected, rig.receiver.duplicates) == (0, 0)

    again = await run_once(rig)  # metadata did not move: nothing downloaded, nothing sent
    assert again["sources"][0]["unchanged"] is True
    assert again["deliveries"] == 0


async def test_sigkill_after_the_outbox_commit_loses_nothing_and_sends_nothing_twice(
        rig: Rig, story: DemoStory) -> None:
    await run_once(rig)
    rig.portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
    rig.receiver.pause()  # the first deliveries hang: the outbox is committed, nothing is acknowledged
    process = await start_vigie(rig)
    await rig.receiver.wait_in_flight(1, timeout=60)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    held = rig.receiver.in_flight
    rig.receiver.resume()

    summary = await run_once(rig)
    assert summary["sources"][0]["unchanged"] is True  # the snapshot itself was committed before the kill
    wanted = expected_by_endpoint(expected_changes(story))
    await rig.receiver.wait_for(sum(len(c) for c in wanted.values()), timeout=30)
    assert received_by_endpoint(rig.receiver) == wanted  # every alert, each stored once
    assert rig.receiver.duplicates <= held  # only requests the killed process never saw answered come twice
    assert rig.receiver.rejected == 0
