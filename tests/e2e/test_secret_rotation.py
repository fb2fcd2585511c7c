"""Webhook secret rotation on both runtimes, over real sockets: during the overlap every delivery carries a
signature for the previous and for the new secret, so a receiver verifying with only the old one, and then one
verifying with only the new one, accepts every delivery; after the overlap, only the new secret signs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.webhook_rigs import (
    RUNTIMES,
    Options,
    RawReceiver,
    Rig,
    alerts,
    put,
    rig_for,
    stored,
    subscribe,
)

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
async def receiver() -> AsyncIterator[RawReceiver]:
    made = RawReceiver()
    await made.start()
    yield made
    await made.close()


@pytest.fixture(params=RUNTIMES)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async for made in rig_for(request.param, tmp_path, Options()):
        yield made


async def test_both_secrets_sign_during_the_overlap_then_only_the_new(rig: Rig, receiver: RawReceiver) -> None:
    sub = await subscribe(rig, receiver.url("partner"))
    old = sub["secret"]
    await alerts(rig, sub["id"], 0)
    await rig.run()
    assert (await receiver.wait_for(1))[0].verifies(old)

    response = await rig.api.post(f"/v1/subscriptions/{sub['id']}/secret/rotate")
    assert response.status == 200, await response.text()
    rotation = await response.json()
    new = rotation["secret"]
    assert new.startswith("whsec_")
    assert new != old
    until = datetime.fromisoformat(rotation["previous_valid_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    assert "secret" not in await (await rig.api.get(f"/v1/subscriptions/{sub['id']}")).json()

    await alerts(rig, sub["id"], 1, 3)
    await rig.run()
    overlap = (await receiver.wait_for(4))[1:]
    assert all(r.verifies(old) for r in overlap), "a receiver still on the old secret accepts them all"
    assert all(r.verifies(new) for r in overlap), "a receiver already on the new secret accepts them all"
    assert all(len(r.headers["webhook-signature"].split(" ")) == 2 for r in overlap)

    current = await stored(rig, sub["id"])
    assert current is not None
    await put(rig, replace(current, previous_until=datetime.now(UTC) - timedelta(seconds=1)))  # the overlap ends
    await alerts(rig, sub["id"], 4)
    await rig.run()
    after = (await receiver.wait_for(5))[4]
    assert after.verifies(new)
    assert not after.verifies(old)


async def test_rotating_a_subscription_without_a_secret_is_a_conflict(rig: Rig) -> None:
    sub = await subscribe(rig, "console://")
    response = await rig.api.post(f"/v1/subscriptions/{sub['id']}/secret/rotate")
    assert response.status == 409
    assert response.content_type == "application/problem+json"
    assert (await rig.api.post("/v1/subscriptions/sub_nope/secret/rotate")).status == 404
