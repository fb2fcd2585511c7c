"""The /vigie slash command over real HTTP, signed as Slack signs it (slack_sdk's SignatureVerifier semantics)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from core.geo import AdminArea, Circle
from notifiers.slack_commands import CommandHooks, SlashCommands
from runtime.bots import build_subscription
from subscriptions.sqlite import SqliteSubscriptionStore

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def signed(body: str, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, SqliteSubscriptionStore]]:
    store = SqliteSubscriptionStore(f"sqlite:///{tmp_path / 'subs.db'}")
    runner = web.AppRunner(SlashCommands(CommandHooks(store, build_subscription), SECRET).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/commands", store
    await runner.cleanup()
    await store.aclose()


async def command(url: str, text: str, *, channel: str = "C0VIGIE01", headers: dict[str, str] | None = None
                  ) -> tuple[int, Any]:
    body = urlencode({"command": "/vigie", "text": text, "channel_id": channel, "user_id": "U1", "team_id": "T1"})
    async with aiohttp.ClientSession() as session, session.post(url, data=body.encode(),
                                                                headers=headers or signed(body)) as response:
        return response.status, await response.json()


async def test_subscribe_list_pause_resume_unsubscribe(served: tuple[str, SqliteSubscriptionStore]) -> None:
    url, store = served
    status, body = await command(url, "subscribe near 48.8566,2.3522 radius 500m rating 3 kinds downgrade")
    assert status == 200
    assert body["response_type"] == "in_channel"
    assert "subscribed `sub_" in body["text"]
    [sub] = await store.all()
    assert (sub.destination, sub.area, sub.filter.min_rating, sorted(sub.filter.kinds)) == (
        "slack://C0VIGIE01", Circle(sub.area.center, 500.0), 3, ["downgrade"])  # type: ignore[attr-defined]
    assert (await command(url, "subscribe 75011"))[0] == 200
    assert [s.area for s in await store.all()][1] == AdminArea("postcode", "75011")
    _, listed = await command(url, "list")
    assert listed["response_type"] == "ephemeral"
    assert sub.id in listed["text"]
    assert "postcode 75011" in listed["text"]
    assert (await command(url, "list", channel="C0OTHER"))[1]["text"].startswith("No subscription")
    assert "paused 1" in (await command(url, f"pause {sub.id}"))[1]["text"]
    assert (await store.get(sub.id)).paused  # type: ignore[union-attr]
    assert "(paused)" in (await command(url, "list"))[1]["text"]
    assert "resumed 2" in (await command(url, "resume"))[1]["text"]
    assert not any(s.paused for s in await store.all())
    assert "no subscription" in (await command(url, f"unsubscribe {sub.id}", channel="C0OTHER"))[1]["text"]
    assert "unsubscribed" in (await command(url, f"unsubscribe {sub.id}"))[1]["text"]
    assert [s.area for s in await store.all()] == [AdminArea("postcode", "75011")]


@pytest.mark.parametrize("text", ["", "help", "what"])
async def test_help(served: tuple[str, SqliteSubscriptionStore], text: str) -> None:
    status, body = await command(served[0], text)
    assert (status, body["response_type"]) == (200, "ephemeral")
    assert "/vigie subscribe near" in body["text"]


async def test_bad_input_is_explained(served: tuple[str, SqliteSubscriptionStore]) -> None:
    _, body = await command(served[0], "subscribe near 148,2 radius 1km")
    assert body["text"].startswith(":warning: cannot subscribe: ")
    _, body = await command(served[0], "subscribe somewhere nice")
    assert "unknown option `somewhere`" in body["text"]
    assert await served[1].all() == []


@pytest.mark.parametrize("forge", ["wrong secret", "stale", "no signature", "bad timestamp"])
async def test_forged_and_stale_requests_are_refused(served: tuple[str, SqliteSubscriptionStore],
                                                     forge: str) -> None:
    body = urlencode({"text": "subscribe 75011", "channel_id": "C0VIGIE01"})
    headers = {"wrong secret": signed(body, secret="another"), "stale": signed(body, at=int(time.time()) - 301),
               "no signature": {"Content-Type": "application/x-www-form-urlencoded"},
               "bad timestamp": {**signed(body), "X-Slack-Request-Timestamp": "soon"}}[forge]
    async with aiohttp.ClientSession() as session, session.post(served[0], data=body.encode(),
                                                                headers=headers) as response:
        assert response.status == 401
    assert await served[1].all() == []


async def test_digest_and_quiet_hours(served: tuple[str, SqliteSubscriptionStore]) -> None:
    url, store = served
    status, body = await command(url, "subscribe near 48.85,2.35 radius 1km digest 6h quiet 22:00-07:00")
    assert status == 200, body
    assert "digest every 6h, quiet 22:00-07:00 (Europe/Paris)" in body["text"]
    [sub] = await store.all()
    assert (sub.digest_hours, sub.quiet_hours, sub.timezone) == (6, "22:00-07:00", "Europe/Paris")
    assert "digest every 6h" in (await command(url, "list"))[1]["text"]
    made = (await command(url, "subscribe postcode 75011 timezone America/Montreal quiet 23h00-6h30"))[1]
    assert "subscribed" in made["text"], made
    other = next(s for s in await store.all() if s.id != sub.id)
    assert (other.digest_hours, other.quiet_hours, other.timezone) == (0, "23:00-06:30", "America/Montreal")
    changed = (await command(url, "digest off"))[1]["text"]  # two schedules that differ: one line each
    assert f"`{sub.id}` quiet 22:00-07:00 (Europe/Paris)" in changed
    assert f"`{other.id}` quiet 23:00-06:30 (America/Montreal)" in changed
    assert [s.digest_hours for s in await store.all()] == [0, 0]
    assert "quiet 21:00-08:00" in (await command(url, f"quiet 21:00-08:00 {other.id}"))[1]["text"]
    assert {s.id: s.quiet_hours for s in await store.all()} == {sub.id: "22:00-07:00", other.id: "21:00-08:00"}
    listed = (await command(url, "list"))[1]["text"]
    assert "quiet 21:00-08:00 (America/Montreal)" in listed
    assert "quiet 22:00-07:00 (Europe/Paris)" in listed


@pytest.mark.parametrize(("text", "message"), [
    ("subscribe 75011 digest 30h", "digest must be a number of hours"),
    ("subscribe 75011 quiet 22:00", "quiet hours must look like 22:00-07:00"),
    ("subscribe 75011 timezone Mars/Olympus", "unknown timezone"),
    ("digest soon", "digest must be a number of hours"),
    ("quiet 25:00-07:00", "quiet hours must look like 22:00-07:00"),
    ("digest", "usage: `/vigie digest 6h [ID]`"),
    ("quiet 22:00-07:00 sub_nope", "no subscription `sub_nope`"),
])
async def test_bad_schedules_are_explained(served: tuple[str, SqliteSubscriptionStore], text: str,
                                           message: str) -> None:
    url, store = served
    assert (await command(url, "subscribe 75004"))[0] == 200
    _, body = await command(url, text)
    assert body["text"].startswith(":warning:")
    assert message in body["text"]
    [sub] = await store.all()
    assert (sub.digest_hours, sub.quiet_hours) == (0, "")
