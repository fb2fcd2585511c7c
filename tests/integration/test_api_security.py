"""The API's security model over real HTTP: tenants' keys, scopes, isolation, rate limits, outbound guard, exposure.

Two tenants share one deployment; a seeded random walk of operations (create, list, get, delete, by either
tenant, on any id seen so far) checks after every step that each tenant sees exactly its own subscriptions and
gets 404 for the other's.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from runtime.api import Unprotected, build_app, check_exposure
from runtime.settings import Settings
from runtime.wiring import key_store
from subscriptions.keys import issue

PROBLEM = "application/problem+json"
Client = TestClient[Any, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", webhook_allow=[], api_rate=1000, api_burst=1000)


async def add_key(settings: Settings, tenant: str, scopes: tuple[str, ...] = ("read", "write")) -> str:
    key, stored = issue(tenant, scopes, at=datetime.now(UTC))
    keys = key_store(settings)
    await keys.add(stored)
    await keys.aclose()
    return key


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(await build_app(settings), host="127.0.0.1")) as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create(client: Client, key: str, **extra: Any) -> Any:
    response = await client.post("/v1/subscriptions", json={"to": "console://", "departement": "69", **extra},
                                 headers=bearer(key))
    assert response.status == 201, await response.text()
    return await response.json()


async def test_keys_scopes_and_revocation(client: Client, settings: Settings) -> None:
    writer, reader = await add_key(settings, "booking"), await add_key(settings, "booking", ("read",))
    made = await create(client, writer)
    assert (await client.get(f"/v1/subscriptions/{made['id']}", headers=bearer(reader))).status == 200
    forbidden = await client.delete(f"/v1/subscriptions/{made['id']}", headers=bearer(reader))
    assert (forbidden.status, forbidden.content_type) == (403, PROBLEM)
    anonymous = await client.get("/v1/subscriptions")
    assert (anonymous.status, anonymous.headers["WWW-Authenticate"]) == (401, 'Bearer realm="vigie"')
    for header in ("Basic dXNlcjpwdw==", "Bearer vk_000000000000_" + "A" * 43, f"Bearer {writer}x"):
        assert (await client.get("/v1/subscriptions", headers={"Authorization": header})).status == 401
    keys = key_store(settings)
    [stored] = [k for k in await keys.all() if "write" in k.scopes]
    assert await keys.revoke(stored.id)
    await keys.aclose()
    assert (await client.get("/v1/subscriptions", headers=bearer(writer))).status == 401


async def test_keys_are_stored_hashed(settings: Settings) -> None:
    key = await add_key(settings, "booking")
    raw = await asyncio.to_thread(Path(settings.state.removeprefix("sqlite:///")).read_bytes)
    assert key.encode() not in raw
    assert key.rpartition("_")[2].encode() not in raw


async def test_tenants_never_see_each_other(client: Client, settings: Settings) -> None:
    keys = {"a": await add_key(settings, "tenant-a"), "b": await add_key(settings, "tenant-b")}
    owned: dict[str, set[str]] = {"a": set(), "b": set()}
    rng = random.Random(8)
    for _ in range(80):
        tenant, other = rng.choice([("a", "b"), ("b", "a")])
        seen = sorted(owned["a"] | owned["b"])
        action = rng.choice(["create", "get", "patch", "delete", "list"] if seen else ["create"])
        if action == "create":
            owned[tenant].add((await create(client, keys[tenant]))["id"])
        elif action in ("get", "patch", "delete"):
            sid = rng.choice(seen)
            response = await client.request(action.upper(), f"/v1/subscriptions/{sid}", headers=bearer(keys[tenant]),
                                            json={"paused": rng.random() < 0.5} if action == "patch" else None)
            mine = sid in owned[tenant]
            assert response.status == (404 if not mine else 204 if action == "delete" else 200)
            if mine and action == "delete":
                owned[tenant].discard(sid)
        listed = await (await client.get("/v1/subscriptions", headers=bearer(keys[tenant]))).json()
        assert {s["id"] for s in listed} == owned[tenant]
        assert not {s["id"] for s in listed} & owned[other]


async def test_rate_limit_per_key(tmp_path: Path) -> None:
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", api_rate=0.01, api_burst=3)
    fast, other = await add_key(settings, "fast"), await add_key(settings, "other")
    async with TestClient(TestServer(await build_app(settings), host="127.0.0.1")) as client:
        statuses = [(await client.get("/v1/subscriptions", headers=bearer(fast))).status for _ in range(4)]
        limited = await client.get("/v1/subscriptions", headers=bearer(fast))
        assert statuses == [200, 200, 200, 429]
        assert (limited.status, limited.content_type, int(limited.headers["Retry-After"]) > 0) == (429, PROBLEM, True)
        assert (await client.get("/v1/subscriptions", headers=bearer(other))).status == 200


@pytest.mark.parametrize("target", [
    "webhook+https://169.254.169.254/latest/meta-data", "webhook+https://10.0.0.1/", "webhook+http://127.0.0.1:6379/",
    "webhook+https://[::ffff:127.0.0.1]/", "webhook+https://100.64.0.1/", "webhook+http://localhost:6379/",
])
async def test_internal_webhook_targets_are_refused(client: Client, settings: Settings, target: str) -> None:
    key = await add_key(settings, "booking")
    response = await client.post("/v1/subscriptions", json={"to": target, "everywhere": True}, headers=bearer(key))
    problem = await response.json(content_type=PROBLEM)
    assert (response.status, problem["errors"][0]["field"]) == (422, "to")
    assert "refused by the outbound guard" in problem["detail"]


async def test_open_on_loopback_until_the_first_key(client: Client, settings: Settings) -> None:
    assert (await client.get("/v1/subscriptions")).status == 200
    await add_key(settings, "booking")
    assert (await client.get("/v1/subscriptions")).status == 401


async def test_refuses_to_listen_beyond_loopback_without_keys(settings: Settings) -> None:
    exposed = settings.model_copy(update={"api_host": "0.0.0.0"})  # noqa: S104 - the point
    with pytest.raises(Unprotected, match=r"refusing to listen on 0\.0\.0\.0 with no API key"):
        await check_exposure(exposed)
    await check_exposure(settings)  # loopback: fine
    await add_key(settings, "booking")
    await check_exposure(exposed)
