"""PATCH /v1/subscriptions/{id} over real HTTP: area, filters, pause and resume; invalid patches name the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from runtime.api import build_app
from runtime.settings import Settings
from runtime.wiring import subscription_store

PROBLEM = "application/problem+json"
Client = TestClient[Any, Any]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", api_token="operator")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(await build_app(settings), host="127.0.0.1")) as http:
        http.session.headers["Authorization"] = "Bearer operator"
        yield http


async def made(client: Client) -> dict[str, Any]:
    response = await client.post("/v1/subscriptions", json={
        "to": "console://", "near": "48.8566,2.3522", "radius_m": "1km", "kinds": ["downgrade"], "label": "office"})
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


async def patch(client: Client, sid: str, body: dict[str, Any], status: int = 200) -> Any:
    response = await client.patch(f"/v1/subscriptions/{sid}", json=body)
    assert response.status == status, await response.text()
    return await response.json(content_type=None)


async def test_area_and_filters_change_the_rest_stays(client: Client) -> None:
    sub = await made(client)
    changed = await patch(client, sub["id"], {"departement": "69", "rating_at_least": 3})
    assert changed["area"] == {"type": "admin", "level": "departement", "code": "69"}
    assert (changed["kinds"], changed["rating_at_least"], changed["label"]) == (["downgrade"], 3, "office")
    assert await (await client.get(f"/v1/subscriptions/{sub['id']}")).json() == changed
    moved = await patch(client, sub["id"], {"bbox": [45.7, 4.8, 45.8, 4.9], "kinds": []})
    assert (moved["area"]["type"], moved["kinds"]) == ("bbox", [])


async def test_pause_and_resume(client: Client, settings: Settings) -> None:
    sub = await made(client)
    assert (await patch(client, sub["id"], {"paused": True}))["paused"] is True
    store = subscription_store(settings)
    stored = await store.get(sub["id"])
    assert stored is not None
    assert stored.paused is True
    await store.put(replace(stored, disabled_reason="endpoint answered 410 Gone"))
    resumed = await patch(client, sub["id"], {"paused": False})
    assert (resumed["paused"], resumed["disabled_reason"]) == (False, None)
    await store.aclose()


@pytest.mark.parametrize(("body", "field"), [
    ({"bbox": [10, 0, 5, 1]}, "bbox"),
    ({"polygon": {"type": "Polygon", "coordinates": [[[0, 0]]]}}, "polygon"),
    ({"kinds": ["nope"]}, "kinds"),
    ({"to": "webhook+https://10.0.0.1/"}, "to"),
    ({"secret": "whsec_x"}, "secret"),
    ({"commune": "75056", "departement": "69"}, "body"),
])
async def test_invalid_patches_name_the_field(client: Client, body: dict[str, Any], field: str) -> None:
    sub = await made(client)
    problem = await patch(client, sub["id"], body, status=422)
    assert problem["errors"][0]["field"] == field
    assert (await (await client.get(f"/v1/subscriptions/{sub['id']}")).json())["area"]["type"] == "circle"


async def test_another_tenants_subscription_cannot_be_patched(client: Client) -> None:
    assert (await client.patch("/v1/subscriptions/sub_nope", json={"paused": True})).status == 404


async def test_digest_quiet_hours_and_timezone_are_shown_and_patched(client: Client) -> None:
    response = await client.post("/v1/subscriptions", json={
        "to": "console://", "departement": "69", "digest": "6h", "quiet": "22:00-07:00"})
    assert response.status == 201, await response.text()
    sub = await response.json()
    assert (sub["digest"], sub["quiet"], sub["timezone"]) == (6, "22:00-07:00", "Europe/Paris")
    changed = await patch(client, sub["id"], {"digest": 0, "timezone": "America/Montreal"})
    assert (changed["digest"], changed["quiet"], changed["timezone"]) == (None, "22:00-07:00", "America/Montreal")
    assert (await patch(client, sub["id"], {"quiet": ""}))["quiet"] == ""
    assert (await (await client.get(f"/v1/subscriptions/{sub['id']}")).json())["digest"] is None
    for body, field in (({"digest": "7x"}, "digest"), ({"quiet": "25:00-07:00"}, "quiet"),
                        ({"timezone": "Mars/Olympus"}, "timezone")):
        problem = await patch(client, sub["id"], body, status=422)
        assert problem["errors"][0]["field"] == field


async def test_where_activities_and_rating_at_most_are_shown_and_patched(client: Client) -> None:
    sub = await made(client)
    assert (sub["where"], sub["activities"], sub["rating_at_most"]) == (None, [], None)
    changed = await patch(client, sub["id"], {"where": 'name contains "pizza"', "activities": ["Restaurant"],
                                              "rating_at_most": 2})
    assert (changed["where"], changed["activities"], changed["rating_at_most"]) == (
        {"field": "name", "contains": "pizza"}, ["Restaurant"], 2)
    assert (changed["kinds"], changed["label"]) == (["downgrade"], "office")
    assert await (await client.get(f"/v1/subscriptions/{sub['id']}")).json() == changed
    as_json = await patch(client, sub["id"], {"where": {"field": "rating", "gte": 3}})
    assert as_json["where"] == {"field": "rating", "gte": 3}
    cleared = await patch(client, sub["id"], {"where": None, "rating_at_most": None, "activities": []})
    assert (cleared["where"], cleared["activities"], cleared["rating_at_most"]) == (None, [], None)
    await patch(client, sub["id"], {"activities": ["Boulangerie"]})
    assert (await patch(client, sub["id"], {"activities": None, "kinds": None}))[
        "activities"] == []  # null: no restriction, as []


@pytest.mark.parametrize(("body", "field"), [
    ({"where": "rating >>> 3"}, "where"),
    ({"where": {"field": "rating", "nope": 1}}, "where"),
    ({"where": 3}, "where"),
    ({"activities": [""]}, "activities"),
    ({"activities": "Restaurant"}, "activities"),
    ({"rating_at_most": 5}, "rating_at_most"),
])
async def test_invalid_filters_name_the_field(client: Client, body: dict[str, Any], field: str) -> None:
    sub = await made(client)
    problem = await patch(client, sub["id"], body, status=422)
    assert problem["errors"][0]["field"].startswith(field), problem
    assert (await (await client.get(f"/v1/subscriptions/{sub['id']}")).json())["where"] is None
