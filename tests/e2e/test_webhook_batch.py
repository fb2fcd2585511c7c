"""Batch webhooks on both runtimes, over real sockets: a subscription that opted in (`batch: true`) gets what is
due as CloudEvents JSON batches, each one signed POST verified by the standardwebhooks library; every delivery is
in exactly one batch and marked done under its own idempotency key (nothing is sent again)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from notifiers.webhook import BATCH_CONTENT_TYPE, batch_id
from tests.e2e.webhook_rigs import RUNTIMES, Options, RawReceiver, Rig, alerts, rig_for, subscribe
from tests.polling import until

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
async def receiver() -> AsyncIterator[RawReceiver]:
    made = RawReceiver()
    await made.start()
    yield made
    await made.close()


@pytest.fixture(params=RUNTIMES)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async for one in rig_for(str(request.param), tmp_path, Options(schedule="0,0.3")):
        yield one


async def test_a_batch_subscription_gets_signed_batches_holding_every_event(rig: Rig, receiver: RawReceiver) -> None:
    made = await subscribe(rig, receiver.url("batch"), batch=True)
    assert made["batch"] is True
    single = await subscribe(rig, receiver.url("single"))
    queued = await alerts(rig, made["id"], 0, count=6)
    await alerts(rig, single["id"], 0, count=2)
    await rig.run()
    await rig.settled()
    await until(lambda: _events_in(receiver, 6 + 2), "every event received")
    keys: list[str] = []
    for request in receiver.requests:
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = json.loads(request.body)
        if isinstance(body, dict):  # a plain delivery of the other subscription
            assert body["data"]["subscription_id"] == single["id"]
            assert request.verifies(single["secret"])
            continue
        events: Any = Webhook(made["secret"]).verify(request.body, headers)
        assert headers["content-type"] == BATCH_CONTENT_TYPE
        ids = [event["id"] for event in events]
        assert headers["webhook-id"] == batch_id([d for d in queued if d.key in ids])
        assert {event["data"]["subscription_id"] for event in events} == {made["id"]}
        keys += ids
    assert sorted(keys) == sorted(d.key for d in queued)
    if rig.name == "embedded":
        assert sum(isinstance(json.loads(r.body), list) for r in receiver.requests) == 1
    before = len(receiver.requests)
    await rig.later(1.0)
    await rig.settled()
    assert len(receiver.requests) == before  # each delivery marked done: nothing goes out again


async def _events_in(receiver: RawReceiver, n: int) -> bool:
    found = [json.loads(request.body) for request in receiver.requests]
    return sum(len(body) if isinstance(body, list) else 1 for body in found) >= n


async def test_batch_is_for_webhooks_and_can_be_turned_off(rig: Rig, receiver: RawReceiver) -> None:
    refused = await rig.api.post("/v1/subscriptions", json={"to": "console://", "everywhere": True, "batch": True})
    assert refused.status == 422
    assert (await refused.json(content_type="application/problem+json"))["errors"][0]["field"] == "batch"
    made = await subscribe(rig, receiver.url("batch"), batch=True)
    patched = await rig.api.patch(f"/v1/subscriptions/{made['id']}", json={"batch": False})
    assert (await patched.json())["batch"] is False
