"""The catch-up feed and previews on the distributed runtime: the demo story through a real producer, stream
worker and webhook notifier (Kafka, Redis), then GET /v1/changes and POST /v1/subscriptions/preview on the API over
the Redis change log, as two tenants: each sees what its webhooks received, nothing of the other's."""


from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from runtime.api import build_app
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DemoStory
from runtime.distributed import DistributedSettings
from runtime.wiring import key_store
from subscriptions.keys import issue
from tests.e2e.test_distributed import (
    PARTITIONS,
    Deployment,
    idle_pairs,
    publish_story,
    received,
    subscriptions_for,
    wait_for_alerts,
)
from tests.integration.test_feed import walk

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

Client = TestClient[Any, Any]
OWNERS = {"sub_rhone": "booking", "sub_paris": "rival"}


async def tenant_client(settings: DistributedSettings, tenant: str) -> Client:
    keys = key_store(settings)
    key, stored = issue(tenant, ["read", "write"], at=datetime.now(UTC))
    await keys.add(stored)
    await keys.aclose()
    client = TestClient(TestServer(await build_app(settings), host="127.0.0.1"))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {key}"
    return client


@pytest.fixture
async def clients(deployment: Deployment) -> AsyncIterator[dict[str, Client]]:
    settings = DistributedSettings(store=deployment.redis_url, namespace=deployment.namespace,
                                   bus=f"kafka://{deployment.bootstrap}", topic_prefix=deployment.prefix,
                                   datasets=["alimconfiance"], partitions=PARTITIONS, api_rate=1e6, api_burst=1e6)
    made = {tenant: await tenant_client(settings, tenant) for tenant in ("booking", "rival", "nobody")}
    try:
        yield made
    finally:
        for client in made.values():
            await client.close()


async def test_feed_and_preview_over_the_redis_change_log(deployment: Deployment, portal: FakePortal,
                                                         receiver: WebhookReceiver, story: DemoStory,
                                                         clients: dict[str, Client]) -> None:
    subscriptions = [replace(s, owner=OWNERS[s.id]) for s in subscriptions_for(receiver) if s.id in OWNERS]
    await deployment.subscribe(subscriptions)
    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier", "notifier", "--channel", "webhook")
    await publish_story(deployment, portal, story)
    await deployment.drained([*idle_pairs(deployment), (f"{deployment.app_id}-view", f"{deployment.prefix}changes")])
    sent: dict[str, set[str]] = {sid: set() for sid in OWNERS}
    for sid, key, _ in received(receiver):
        sent[sid].add(key)
    await wait_for_alerts(deployment, receiver, sum(map(len, sent.values())))
    assert all(sent.values())

    for sid, tenant in OWNERS.items():
        events = await walk(clients[tenant], 500)
        assert {e["id"] for e in events} == sent[sid]
        assert {e["data"]["subscription_id"] for e in events} == {sid}
        assert [e["id"] for e in await walk(clients[tenant], 13)] == [e["id"] for e in events]
    assert await walk(clients["nobody"], 500) == []

    rhone = next(s for s in subscriptions if s.id == "sub_rhone")
    preview = await clients["nobody"].post("/v1/subscriptions/preview", params={"days": "1"}, json={
        "to": rhone.destination, "departement": "69", "lang": "en"})
    assert preview.status == 200, await preview.text()
    assert (await preview.json())["alerts"] == len(sent["sub_rhone"])
