"""Source incidents on the distributed runtime: `vigie producer` decides after each poll, the stream workers' match
agent fans the notice out to every subscriber of the dataset, the webhook notifier delivers it. One notice when the
source starts failing, none while it fails, one when it is back; `vigie sources` shows the open incident."""


from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from core.geo import AdminArea, Area, Everywhere
from core.model import Filter, Subscription
from notifiers import new_secret
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, load_rows
from tests.e2e.test_distributed import (
    VIGIE,
    Deployment,
    idle_pairs,
    received,
    wait_for_alerts,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]
SHAPES: list[tuple[str, Area, Filter]] = [("sub_all", Everywhere(), Filter()),
          ("sub_gironde", AdminArea("departement", "33"), Filter(kinds=frozenset({"downgrade"}))),
          ("sub_other", Everywhere(), Filter(datasets=frozenset({"other"})))]


def webhook_subscriptions(receiver: WebhookReceiver) -> list[Subscription]:
    made = []
    for sub_id, area, filt in SHAPES:
        secret = new_secret()
        endpoint = receiver.add_endpoint(sub_id, secret).replace("http://", "webhook+http://", 1)
        made.append(Subscription(sub_id, area, endpoint, filt, lang="en", secret=secret))
    return made


async def sources_json(deployment: Deployment, url: str) -> dict[str, object]:
    proc = await asyncio.create_subprocess_exec(str(VIGIE), "sources", "--json", env=deployment.env([url]),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    [source] = json.loads(out.decode())
    assert isinstance(source, dict)
    return source


async def failing_poll(deployment: Deployment, portal: FakePortal, url: str) -> None:
    portal.fail_next(403, endpoint="metadata")
    summary = await deployment.produce_once(url)
    assert summary["sources"][0]["problem"]


async def test_a_failing_source_is_told_once_when_it_starts_and_once_when_it_ends(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver) -> None:
    deployment.extra_env["VIGIE_FAILING_AFTER"] = "3"
    await deployment.subscribe(webhook_subscriptions(receiver))
    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier", "notifier", "--channel", "webhook")
    url = portal.url_for(DATASET_ID)
    portal.publish(DATASET_ID, load_rows()[:50], modified="2025-06-01T06:00:00+00:00")
    assert (await deployment.produce_once(url))["sources"][0]["baseline"] is True

    for _ in range(3):
        await failing_poll(deployment, portal, url)
    await wait_for_alerts(deployment, receiver, 2)
    await failing_poll(deployment, portal, url)
    source = await sources_json(deployment, url)
    assert (source["healthy"], source["incident"], source["failures"]) == (False, "failing", 4)

    await deployment.produce_once(url)
    await wait_for_alerts(deployment, receiver, 4)
    await deployment.produce_once(url)
    await deployment.drained(idle_pairs(deployment))
    got = received(receiver)
    assert len(set(got)) == len(got)
    assert Counter((sub, kind) for sub, _, kind in got) == Counter(
        {(sub, kind): 1 for sub in ("sub_all", "sub_gironde") for kind in ("source_failing", "source_recovered")})
    source = await sources_json(deployment, url)
    assert (source["healthy"], source["incident"], source["failures"]) == (True, None, 0)
    assert receiver.rejected == 0

