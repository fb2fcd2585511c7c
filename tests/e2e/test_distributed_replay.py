"""The distributed runtime alerts exactly as the embedded one over weeks of real publications.

Six consecutive weekly Alim'Confiance publications built from the real 2018-2019 rows (tests/e2e/replay.py: late
results, corrected ratings, withdrawn and re-published inspections, follow-ups, and addresses corrected so that
records change establishment *and* Kafka partition) go through the distributed roles as an operator runs them:
the default table store (`rocksdb://`), two stream workers and two notifiers. The oracle is the embedded runtime
on the same publications: the sets of (subscription, webhook-id, kind) must be equal, with no webhook-id twice.
"""


from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.model import Subscription
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, DemoSnapshot
from tests.e2e.replay import build_replay, digest, entity, identity, partition
from tests.e2e.test_distributed import (
    PARTITIONS,
    Alert,
    Deployment,
    embedded_alerts_of,
    idle_pairs,
    received,
    subscriptions_for,
    wait_for_alerts,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(420)]


async def run_distributed(deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver,
                          snapshots: Sequence[DemoSnapshot], subscriptions: list[Subscription], *,
                          expected: int) -> list[Alert]:
    """The publications through two stream workers on the default table store and two notifiers."""
    deployment.extra_env["VIGIE_STREAMS_STORE"] = ""  # the default: rocksdb:// (rocksdict is installed)
    await deployment.subscribe(subscriptions)
    await deployment.start_roles(workers=2, notifiers=2)
    url = portal.url_for(DATASET_ID)
    for snapshot in snapshots:
        portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
        await deployment.produce_once(url)
    await wait_for_alerts(deployment, receiver, expected, timeout=240)
    await deployment.drained(idle_pairs(deployment), deadline_s=120)
    return received(receiver)


def comparison(expected: list[set[Alert]], got: list[Alert]) -> str:
    """Alerts by kind, embedded next to distributed: the table the closing note of a run reports."""
    want = Counter(kind for alerts in expected for _, _, kind in alerts)
    have = Counter(kind for _, _, kind in got)
    rows = [f"{'kind':<16}{'embedded':>10}{'distributed':>13}"]
    rows += [f"{kind:<16}{want[kind]:>10}{have[kind]:>13}" for kind in sorted(want.keys() | have.keys())]
    rows.append(f"{'total':<16}{sum(want.values()):>10}{sum(have.values()):>13}")
    return "\n".join(rows)


async def test_weeks_of_publications_alert_as_the_embedded_runtime(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, tmp_path: Path) -> None:
    snapshots, edits = build_replay(publications=6, partitions=PARTITIONS)
    subscriptions = subscriptions_for(receiver)
    per_publication = await embedded_alerts_of(tmp_path, portal, snapshots, subscriptions)
    expected = set().union(*per_publication)
    kinds = Counter(kind for _, _, kind in expected)
    assert not per_publication[0], "the first publication is a baseline"
    assert {"new_inspection", "updated", "removed", "downgrade", "upgrade", "aged_out"} <= kinds.keys(), kinds

    got = await run_distributed(deployment, portal, receiver, snapshots, subscriptions, expected=len(expected))

    print(f"\n{comparison(per_publication, got)}\npublisher's edits:\n" + "\n".join(edits))
    assert len(got) == len(set(got)), "no webhook-id twice"
    assert set(got) - expected == set(), "alerts the embedded runtime does not send"
    assert expected - set(got) == set(), "alerts the distributed runtime lost"
    assert receiver.rejected == 0


async def test_an_address_change_across_partitions_is_one_update(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, tmp_path: Path) -> None:
    """Inspections whose corrected address moves them to an establishment on another partition: `updated`, never
    `removed` or `new_inspection`."""
    snapshots, _ = build_replay(publications=2, partitions=PARTITIONS)
    before = {identity(r): r for r in snapshots[0].rows}
    moved = {identity(r) for r in snapshots[1].rows
             if identity(r) in before and entity(r) != entity(before[identity(r)])}
    assert len(moved) >= 4
    assert all(partition(entity(before[i]), PARTITIONS) != partition(entity(r), PARTITIONS)
               for r in snapshots[1].rows if (i := identity(r)) in moved)
    kept = {identity(r) for r in snapshots[0].rows if entity(r) in {entity(before[i]) for i in moved}} | moved
    small = [DemoSnapshot([r for r in s.rows if identity(r) in kept or digest(*identity(r)) % 10 == 0], s.modified,
                          s.label) for s in snapshots]
    subscriptions = subscriptions_for(receiver)[:1]  # everywhere, every kind
    expected = set().union(*await embedded_alerts_of(tmp_path, portal, small, subscriptions))
    numbers = {i[0] for i in moved}

    got = await run_distributed(deployment, portal, receiver, small, subscriptions, expected=len(expected))

    assert set(got) == expected
    alerts = [(r.event["subject"].partition("|")[0], kind) for r, (_, _, kind) in zip(receiver.received, got,
                                                                                       strict=True)]
    assert sorted(kind for number, kind in alerts if number in numbers) == ["updated"] * len(numbers)
