"""The REST API over real HTTP on 127.0.0.1, backed by the SQLite store and view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.geo import AdminCodes, Point
from core.model import Record
from core.profiles import ALIMCONFIANCE
from runtime.api import build_app
from runtime.settings import Settings
from streams.view_sqlite import SqliteCurrentView

PROBLEM = "application/problem+json"


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    return Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", api_token="s3cret")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(await build_app(settings), host="127.0.0.1")) as http:
        http.session.headers["Authorization"] = "Bearer s3cret"
        yield http


async def test_health_and_readiness_need_no_token(client: TestClient[Any, Any]) -> None:
    client.session.headers.pop("Authorization")
    assert (await client.get("/healthz")).status == 200
    assert (await (await client.get("/readyz")).json()) == {"status": "ready"}
    denied = await client.get("/v1/subscriptions")
    assert (denied.status, denied.content_type) == (401, PROBLEM)


async def test_subscription_lifecycle(client: TestClient[Any, Any]) -> None:
    made = await client.post("/v1/subscriptions", json={
        "to": "webhook+https://partner.example/hooks/vigie", "departement": "69", "kinds": ["new_inspection"]})
    assert made.status == 201
    body = await made.json()
    assert body["secret"].startswith("whsec_")
    assert made.headers["Location"] == f"/v1/subscriptions/{body['id']}"
    fetched = await (await client.get(f"/v1/subscriptions/{body['id']}")).json()
    assert "secret" not in fetched
    assert fetched["area"] == {"type": "admin", "level": "departement", "code": "69"}
    assert [s["id"] for s in await (await client.get("/v1/subscriptions")).json()] == [body["id"]]
    assert (await client.delete(f"/v1/subscriptions/{body['id']}")).status == 204
    gone = await client.delete(f"/v1/subscriptions/{body['id']}")
    assert (gone.status, gone.content_type) == (404, PROBLEM)


@pytest.mark.parametrize(("payload", "status", "detail"), [
    ({"to": "console://"}, 422, "give exactly one area"),
    ({"to": "console://", "everywhere": True, "rating_at_least": 9}, 422, "rating_at_least"),
    ({"to": "ftp://x", "everywhere": True}, 422, "unknown destination scheme"),
    ({"to": "webhook+http://partner.example/h", "everywhere": True}, 422, "loopback"),
    ([1, 2], 400, "expected a JSON object"),
])
async def test_bad_subscriptions_get_precise_problems(client: TestClient[Any, Any], payload: Any, status: int,
                                                      detail: str) -> None:
    response = await client.post("/v1/subscriptions", json=payload)
    problem = await response.json(content_type=PROBLEM)
    assert (response.status, problem["status"]) == (status, status)
    assert detail in problem["detail"]
    assert problem["type"].startswith("/problems/")


async def test_malformed_json_wrong_media_type_and_unknown_routes(client: TestClient[Any, Any]) -> None:
    broken = await client.post("/v1/subscriptions", data=b"{nope", headers={"Content-Type": "application/json"})
    assert (broken.status, broken.content_type) == (400, PROBLEM)
    text = await client.post("/v1/subscriptions", data=b"to=console://")
    assert (text.status, text.content_type) == (415, PROBLEM)
    missing = await client.get("/v1/nothing-here")
    assert (missing.status, missing.content_type) == (404, PROBLEM)


def place(key: str, lat: float, rating: int) -> Record:
    fields = {"name": key, "date_inspection": "2025-05-01"}
    return Record("alimconfiance", key, fields, ALIMCONFIANCE.fingerprint(fields), Point(lat, 2.35),
                  AdminCodes(departement="75"), key, rating)


async def test_safe_places_near_me(client: TestClient[Any, Any], settings: Settings) -> None:
    view = await SqliteCurrentView.connect(settings.state, dataset="alimconfiance")
    for record in (place("near-good", 48.8570, 1), place("near-bad", 48.8571, 4), place("far", 48.95, 1)):
        await view.upsert(record)
    await view.aclose()
    query = {"lat": "48.8566", "lon": "2.35", "radius": "1km", "max_rating": "2"}
    found = await (await client.get("/v1/datasets/alimconfiance/near", params=query)).json()
    assert [(p["key"], p["rating"]) for p in found] == [("near-good", 1)]
    assert 0 < found[0]["distance_m"] < 100
    bad = await client.get("/v1/datasets/alimconfiance/near", params={"lat": "100", "lon": "2"})
    assert (bad.status, (await bad.json(content_type=PROBLEM))["errors"][0]["field"]) == (400, "lat")
    assert (await client.get("/v1/datasets/alimconfiance/entities/far")).status == 200
    assert (await client.get("/v1/datasets/nope/near", params={"lat": "1", "lon": "1"})).status == 404
