"""The catch-up feed and previews over real sockets: the demo story through the embedded runtime, then
GET /v1/changes and POST /v1/subscriptions/preview on the API as two tenants; the same log on Redis."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from runtime.api import build_app
from runtime.demo.portal import FakePortal
from runtime.demo.snapshots import DATASET_ID, DemoStory, build_snapshots
from runtime.embedded import Embedded
from runtime.settings import Settings
from runtime.wiring import key_store
from streams.changelog_redis import RedisChangeLog
from streams.changelog_sqlite import SqliteChangeLog
from subscriptions.keys import issue
from tests import services
from tests.e2e.webhook_rigs import RawReceiver

Client = TestClient[Any, Any]
HERAULT = {"departement": "34"}
PARIS = {"near": [48.8566, 2.3522], "radius_m": 3000}


@pytest.fixture(scope="module")
def story() -> DemoStory:
    return build_snapshots()


@dataclass
class Tenants:
    a: Client
    b: Client


async def clients(settings: Settings) -> AsyncIterator[Tenants]:
    keys = key_store(settings)
    made = []
    for name in ("booking", "rival"):
        key, stored = issue(name, ["read", "write"], at=datetime.now(UTC))
        await keys.add(stored)
        client = TestClient(TestServer(await build_app(settings), host="127.0.0.1"))
        await client.start_server()
        client.session.headers["Authorization"] = f"Bearer {key}"
        made.append(client)
    await keys.aclose()
    try:
        yield Tenants(*made)
    finally:
        for client in made:
            await client.close()


async def subscribe(client: Client, to: str, area: dict[str, Any]) -> str:
    response = await client.post("/v1/subscriptions", json={"to": to, **area})
    assert response.status == 201, await response.text()
    sid: str = (await response.json())["id"]
    return sid


async def page(client: Client, limit: int, cursor: str | None = None) -> dict[str, Any]:
    params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
    response = await client.get("/v1/changes", params=params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def walk(client: Client, limit: int) -> list[dict[str, Any]]:
    """Every event of the feed, page by page; each page resumes right after the previous one."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        got = await page(client, limit, cursor)
        assert len(got["events"]) <= limit or len({e["subject"] for e in got["events"]}) == 1
        events += got["events"]
        cursor = got["next_cursor"]
        if not got["more"]:
            return events


@dataclass
class Ran:
    settings: Settings
    tenants: Tenants
    receiver: RawReceiver
    herault: str
    paris: str


@pytest.fixture
async def ran(tmp_path: Path, story: DemoStory) -> AsyncIterator[Ran]:
    """The demo story through the embedded runtime, tenant a's Hérault webhook and tenant b's Paris one."""
    receiver = RawReceiver()
    await receiver.start()
    async with FakePortal() as portal:
        portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
        settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", sources=[portal.url_for(DATASET_ID)],
                            api_rate=1e6, api_burst=1e6)
        async for tenants in clients(settings):
            herault = await subscribe(tenants.a, receiver.url("herault"), HERAULT)
            paris = await subscribe(tenants.b, receiver.url("paris"), PARIS)
            async with Embedded(settings) as vigie:
                await vigie.run_once()
                portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
                await vigie.run_once()
            yield Ran(settings, tenants, receiver, herault, paris)
    await receiver.close()


async def test_feed_pages_are_stable_and_equal_what_was_delivered(ran: Ran) -> None:
    whole = await walk(ran.tenants.a, 500)
    assert whole, "the demo story alerts Hérault"
    assert {e["data"]["subscription_id"] for e in whole} == {ran.herault}
    small = await walk(ran.tenants.a, 7)
    assert [e["id"] for e in small] == [e["id"] for e in whole]
    first = await page(ran.tenants.a, 7)
    resumed = await page(ran.tenants.a, 7, first["next_cursor"])
    assert resumed["events"][0]["id"] == whole[len(first["events"])]["id"]
    again = await page(ran.tenants.a, 7, first["next_cursor"])
    assert again["events"] == resumed["events"]
    sent = {r.headers["webhook-id"] for r in ran.receiver.requests}
    assert {e["id"] for e in whole} <= sent
    others = {e["id"] for e in await walk(ran.tenants.b, 500)}
    assert others
    assert not others & {e["id"] for e in whole}
    assert others | {e["id"] for e in whole} == sent


async def test_a_tenant_without_subscriptions_sees_nothing_and_bad_cursors_are_refused(ran: Ran) -> None:
    await ran.tenants.b.delete(f"/v1/subscriptions/{ran.paris}")
    assert await walk(ran.tenants.b, 500) == []
    bad = await ran.tenants.a.get("/v1/changes", params={"cursor": "nope"})
    assert bad.status == 400
    assert (await bad.json(content_type="application/problem+json"))["errors"][0]["field"] == "cursor"
    gone = await ran.tenants.b.get(f"/v1/subscriptions/{ran.herault}")
    assert gone.status == 404


async def test_preview_counts_what_the_runtime_delivered(ran: Ran) -> None:
    herault = len(await walk(ran.tenants.a, 500))
    for client, area, sent in ((ran.tenants.a, HERAULT, herault),
                               (ran.tenants.b, PARIS, len(ran.receiver.requests) - herault)):
        response = await client.post("/v1/subscriptions/preview", params={"days": "7"},
                                     json={"to": ran.receiver.url("preview"), **area})
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["alerts"] == sent
        assert body["complete"] is True
        assert 0 < len(body["examples"]) <= 5


@pytest.mark.redis
async def test_the_feed_on_redis_pages_the_stream_like_sqlite(ran: Ran) -> None:
    namespace = f"feed-{uuid.uuid4().hex[:8]}"
    redis_url = services.redis_url()
    stream = RedisChangeLog(redis_url, namespace=namespace)
    logged = [change for _, change in await SqliteChangeLog(ran.settings.state).after(None, 100_000)]
    await stream.append(logged)
    settings = Settings(state=ran.settings.state, store=redis_url, namespace=namespace, bus="memory://",
                        api_rate=1e6, api_burst=1e6)
    try:
        async for tenants in clients(settings):
            sid = await subscribe(tenants.a, ran.receiver.url("redis"), HERAULT)
            whole = await walk(tenants.a, 500)
            assert len(whole) == len(await walk(ran.tenants.a, 500))
            assert [e["id"] for e in await walk(tenants.a, 9)] == [e["id"] for e in whole]
            assert {e["data"]["subscription_id"] for e in whole} == {sid}
            assert await walk(tenants.b, 500) == []
            preview = await tenants.b.post("/v1/subscriptions/preview", json={"to": ran.receiver.url("p"), **HERAULT})
            assert (await preview.json())["alerts"] == len(whole)
    finally:
        await stream._redis.delete(stream.key, *[k async for k in stream._redis.scan_iter(f"{namespace}:*")])
        await stream.aclose()


async def test_random_operations_of_two_tenants_never_leak_through_the_feed(ran: Ran) -> None:
    clients = {"a": ran.tenants.a, "b": ran.tenants.b}
    owned = {"a": {ran.herault}, "b": {ran.paris}}
    rng = random.Random(8)
    areas: list[dict[str, Any]] = [HERAULT, PARIS, {"departement": "75"}, {"everywhere": True}]
    for _ in range(12):
        tenant = rng.choice("ab")
        action = rng.choice(["create", "pause", "delete"])
        if action == "create":
            owned[tenant].add(await subscribe(clients[tenant], ran.receiver.url("walk"), rng.choice(areas)))
        elif owned[tenant]:
            sid = rng.choice(sorted(owned[tenant]))
            if action == "delete":
                assert (await clients[tenant].delete(f"/v1/subscriptions/{sid}")).status == 204
                owned[tenant].discard(sid)
            else:
                await clients[tenant].patch(f"/v1/subscriptions/{sid}", json={"paused": True})
        for who, client in clients.items():
            seen = {e["data"]["subscription_id"] for e in await walk(client, 500)}
            assert seen <= owned[who]


async def test_a_read_key_may_preview_and_read_the_feed_but_not_subscribe(ran: Ran) -> None:
    keys = key_store(ran.settings)
    key, stored = issue("booking", ["read"], at=datetime.now(UTC))
    await keys.add(stored)
    await keys.aclose()
    reader = {"Authorization": f"Bearer {key}"}
    body = {"to": ran.receiver.url("preview"), **HERAULT}
    previewed = await ran.tenants.a.post("/v1/subscriptions/preview", json=body, headers=reader)
    assert previewed.status == 200
    assert (await ran.tenants.a.get("/v1/changes", headers=reader)).status == 200
    assert (await ran.tenants.a.post("/v1/subscriptions", json=body, headers=reader)).status == 403
