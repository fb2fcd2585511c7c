"""No alert storms, on real rows: a publisher's mass rewrite alerts nobody, its grade changes still do.

The fixture replays what the real 2017 Alim'Confiance exports did, on 2,000 real inspections of 2018-2019: the
next publication re-cases every commune name (cosmetic: no change at all) and reformats most address lines
("12 RUE DE LA GARE" → "12, Rue De La Gare": not cosmetic, a mass rewrite), and three inspections get a new grade,
one of them inside the rewrite. Only the three grades alert; one dataset notice goes to each subscription the
rewrite would have reached; `vigie sources` shows the held event and `vigie sources release` lets every held
update through, none lost.
"""


from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.geo import AdminArea, Everywhere
from core.model import Filter, Op, Subscription
from notifiers import new_secret
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, RATING_CODES, Row, key_of, load_rows
from runtime.embedded import Embedded
from runtime.settings import Settings
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.e2e.test_distributed import (
    Alert,
    Deployment,
    idle_pairs,
    received,
    wait_for_alerts,
)

pytestmark = pytest.mark.slow
MODIFIED = (datetime(2019, 8, 25, tzinfo=UTC), datetime(2019, 9, 1, tzinfo=UTC))  # of the two publications
FAR = datetime(2100, 1, 1, tzinfo=UTC)
VIGIE = Path(sys.executable).parent / "vigie"
NUMBERED = re.compile(r"(\d+)\s+(.*)")
REGRADE = {"Très satisfaisant": "Satisfaisant", "Satisfaisant": "A améliorer", "A améliorer": "Satisfaisant"}


def rewritten(row: Row) -> Row:
    """The row as the rewriting publisher exports it."""
    new = {**row, "libelle_commune": (row["libelle_commune"] or "").upper() or None}
    if (found := NUMBERED.fullmatch(row["adresse_2_ua"] or "")) is not None:
        new["adresse_2_ua"] = f"{found[1]}, {found[2].title()}"
    return new


def regraded(row: Row) -> Row:
    label = REGRADE.get(row["synthese_eval_sanit"], "Satisfaisant")
    return {**row, "synthese_eval_sanit": label, "app_code_synthese_eval_sanit": RATING_CODES[label]}


def publications() -> tuple[list[Row], list[Row], set[str], set[str]]:
    """(first, second, keys regraded, keys whose address was rewritten and grade kept)."""
    first = sorted(load_rows(), key=key_of)[:2000]
    second = [rewritten(r) for r in first]
    moved = {key_of(r) for r, n in zip(first, second, strict=True) if r["adresse_2_ua"] != n["adresse_2_ua"]}
    picks = [i for i, r in enumerate(first) if r["synthese_eval_sanit"] in REGRADE][:40:13]
    for i in picks:
        second[i] = regraded(second[i])
    graded = {key_of(first[i]) for i in picks}
    assert any(k in moved for k in graded), "one grade change sits inside the rewrite"
    return first, second, graded, moved - graded


@pytest.fixture
async def portal() -> AsyncIterator[FakePortal]:
    async with FakePortal() as running:
        yield running


SUBSCRIPTIONS = [Subscription("sub_all", Everywhere(), "console://"),
                 Subscription("sub_gironde", AdminArea("departement", "33"), "console://"),
                 Subscription("sub_updates", Everywhere(), "console://", Filter(kinds=frozenset({"downgrade"})))]


async def subscribe(settings: Settings) -> None:
    store = SqliteSubscriptionStore(settings.subscription_store)
    for subscription in SUBSCRIPTIONS:
        await store.put(subscription)
    await store.aclose()


async def vigie(settings: Settings, *args: str) -> tuple[int, str]:
    env = {**os.environ, "VIGIE_STATE": settings.state, "VIGIE_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(str(VIGIE), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, output.decode()


async def test_a_mass_rewrite_is_one_notice_and_grades_still_alert(portal: FakePortal, tmp_path: Path) -> None:
    first, second, graded, moved = publications()
    assert len(moved) > 0.05 * len(first)
    url = portal.url_for(DATASET_ID)
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", sources=[url])
    await subscribe(settings)
    now = datetime(2019, 9, 1, tzinfo=UTC)
    async with Embedded(settings, clock=lambda: now) as running:
        portal.publish(DATASET_ID, first, modified=now - timedelta(days=7))
        assert (await running.poll(url)).baseline
        portal.publish(DATASET_ID, second, modified=now)
        outcome = await running.poll(url)

    alerts = [d for d in outcome.deliveries if d.change.op is not Op.NOTICE]
    notices = [d for d in outcome.deliveries if d.change.op is Op.NOTICE]
    assert {d.change.key for d in alerts} == graded
    assert {d.change.kind for d in alerts} <= {"downgrade", "upgrade"}
    assert outcome.event is not None
    assert outcome.event.fields == ("address",)
    assert {c.key for c in outcome.held} == moved
    assert sorted(d.subscription.id for d in notices) == ["sub_all", "sub_gironde"]
    assert "address" in notices[0].change.current.fields["fields"]
    await released_as_cli_user(settings, outcome.event.id, moved)


async def released_as_cli_user(settings: Settings, event_id: str, moved: set[str]) -> None:
    code, output = await vigie(settings, "sources", "--json")
    assert code == 0, output
    [source] = json.loads(output)
    assert [(e["id"], e["count"], e["released_at"]) for e in source["events"]] == [(event_id, len(moved), None)]
    code, output = await vigie(settings, "sources")
    assert event_id[:12] in output

    code, output = await vigie(settings, "sources", "release", event_id[:12])
    assert code == 0, output
    queued = int(re.findall(r"([\d,]+) deliveries queued", output)[0].replace(",", ""))
    code, output = await vigie(settings, "sources", "release", event_id[:12])
    assert (code, "nothing left to send" in output) == (0, True)
    code, output = await vigie(settings, "sources", "release", "nope")
    assert code == 2
    assert output.count("\n") == 1

    async with Embedded(settings) as running:
        pending = await running.outbox.pending(100_000, datetime(2100, 1, 1, tzinfo=UTC))
    released = [(d.subscription.id, d.change.key) for d, _ in pending if d.change.key in moved]
    assert len(released) == queued
    assert {key for sub, key in released if sub == "sub_all"} == moved, "nothing held is lost"
    assert {sub for sub, _ in released} == {"sub_all", "sub_gironde"}


# -- the same rule on the distributed runtime -------------------------------------------------------------------


def webhook_subscriptions(receiver: WebhookReceiver) -> list[Subscription]:
    made = []
    for sub in SUBSCRIPTIONS:
        secret = new_secret()
        endpoint = receiver.add_endpoint(sub.id, secret).replace("http://", "webhook+http://", 1)
        made.append(Subscription(sub.id, sub.area, endpoint, sub.filter, lang="en", secret=secret))
    return made


async def embedded_oracle(tmp_path: Path, portal: FakePortal, rows: tuple[list[Row], list[Row]],
                          subscriptions: list[Subscription]) -> tuple[set[Alert], set[Alert]]:
    """(alerts of the second publication, alerts a release adds) on the embedded runtime."""
    url = portal.url_for(DATASET_ID)
    settings = Settings(state=f"sqlite:///{tmp_path / 'oracle.db'}", sources=[url])
    store = SqliteSubscriptionStore(settings.subscription_store)
    for subscription in subscriptions:
        await store.put(subscription)
    await store.aclose()
    async with Embedded(settings) as running:
        for published, modified in zip(rows, MODIFIED, strict=True):
            portal.publish(DATASET_ID, published, modified=modified)
            outcome = await running.poll(url)
        assert outcome.event is not None
        [event] = await running.state.events()
        before = {d.key for d, _ in await running.outbox.pending(100_000, FAR)}
        await running.release(event)
        after = await running.outbox.pending(100_000, FAR)
    alerts = {(d.subscription.id, d.key, d.change.kind) for d in outcome.deliveries}
    return alerts, {(d.subscription.id, d.key, d.change.kind) for d, _ in after if d.key not in before}


async def test_the_distributed_runtime_holds_and_releases_as_the_embedded_one(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, tmp_path: Path) -> None:
    first, second, _, moved = publications()
    subscriptions = webhook_subscriptions(receiver)
    alerts, released = await embedded_oracle(tmp_path, portal, (first, second), subscriptions)
    assert {kind for _, _, kind in alerts} >= {"mass_update"}
    assert len({key for _, key, _ in released}) >= len(moved)
    deployment.extra_env["VIGIE_STREAMS_STORE"] = ""  # the default table store
    await deployment.subscribe(subscriptions)
    await deployment.start_roles(workers=2, notifiers=1)
    url = portal.url_for(DATASET_ID)
    for published, modified in zip((first, second), MODIFIED, strict=True):
        portal.publish(DATASET_ID, published, modified=modified)
        await deployment.produce_once(url)
    await wait_for_alerts(deployment, receiver, len(alerts))
    await deployment.drained(idle_pairs(deployment))
    assert set(received(receiver)) == alerts

    env = {**deployment.env([url]), "VIGIE_LOG_LEVEL": "WARNING"}
    code, output = await cli(env, "sources", "--json")
    assert code == 0, output
    [event] = [e for source in json.loads(output) for e in source["events"]]
    assert (event["count"], event["fields"], event["released_at"]) == (len(moved), ["address"], None)
    code, output = await cli(env, "sources", "release", event["id"][:12])
    assert code == 0, output
    await wait_for_alerts(deployment, receiver, len(alerts) + len(released))
    await deployment.drained(idle_pairs(deployment))
    got = received(receiver)
    assert len(got) == len(set(got))
    assert set(got) == alerts | released


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(str(VIGIE), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, output.decode()
