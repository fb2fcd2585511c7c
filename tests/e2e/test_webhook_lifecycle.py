"""The delivery lifecycle on both runtimes, over real sockets: a 410 disables the endpoint, an endpoint failing
for too long is disabled and its owner told, dead letters are listed and replayed (API, scoped to the tenant, and
CLI), and unsubscribing stops a retry in flight."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime.tenants_cli import add_key
from tests.e2e.webhook_rigs import RUNTIMES, Options, RawReceiver, Rig, alerts, rig_for, stored, subscribe, vigie
from tests.polling import until

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
async def receiver() -> AsyncIterator[RawReceiver]:
    made = RawReceiver()
    await made.start()
    yield made
    await made.close()


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


async def made(runtime: str, tmp_path: Path, options: Options) -> AsyncIterator[Rig]:
    async for rig in rig_for(runtime, tmp_path, options):
        yield rig


@pytest.fixture
async def rig(runtime: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async for one in made(runtime, tmp_path, Options(schedule="0,0.3")):
        yield one


async def reason_of(rig: Rig, sid: str) -> str | None:
    subscription = await stored(rig, sid)
    assert subscription is not None
    return subscription.disabled_reason


async def test_410_disables_every_subscription_to_the_endpoint(rig: Rig, receiver: RawReceiver) -> None:
    gone, also, other = [await subscribe(rig, receiver.url(name)) for name in ("gone", "gone", "fine")]
    receiver.answer(410)
    await alerts(rig, gone["id"], 0)
    await rig.settled()
    await until(lambda: _disabled(rig, also["id"]), "the endpoint's other subscription is disabled")
    assert "410" in str(await reason_of(rig, gone["id"]))
    assert await reason_of(rig, other["id"]) is None
    shown = await (await rig.api.get(f"/v1/subscriptions/{also['id']}")).json()
    assert "410 Gone" in shown["disabled_reason"]

    await alerts(rig, also["id"], 1)
    await rig.settled()
    assert len(receiver.requests) == 1, "nothing more goes to a disabled endpoint"


async def _disabled(rig: Rig, sid: str) -> bool:
    return await reason_of(rig, sid) is not None


@pytest.fixture
async def flaky(runtime: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """A rig whose endpoints are disabled after failing two hours (embedded, fake clock), or half a second."""
    options = (Options(schedule="0,4000s,4000s,4000s,4000s", disable_after=7200.0) if runtime == "embedded" else
               Options(schedule="0,0.3,0.3,0.3,0.3,0.3,0.3,0.3", disable_after=0.5))
    async for one in made(runtime, tmp_path, options):
        yield one


async def test_an_endpoint_failing_continuously_is_disabled(flaky: Rig, receiver: RawReceiver) -> None:
    sub = await subscribe(flaky, receiver.url("down"))
    receiver.answer(503, times=100)
    await alerts(flaky, sub["id"], 0)

    async def disabled() -> bool:
        await flaky.later(4000.0 if flaky.name == "embedded" else 0.1)
        return await reason_of(flaky, sub["id"]) is not None

    await until(disabled, "the endpoint is disabled after failing for the whole period")
    reason = str(await reason_of(flaky, sub["id"]))
    assert reason.startswith("failing continuously since")
    assert "503" in reason
    assert len(receiver.requests) >= 2
    listed = {s["id"]: s for s in json.loads(await vigie(flaky, "subscriptions", "list", "--json"))}
    assert listed[sub["id"]]["disabled_reason"] == reason


async def test_dead_letters_are_listed_per_tenant_and_replayed(rig: Rig, receiver: RawReceiver) -> None:
    sub = await subscribe(rig, receiver.url("late"))
    receiver.answer(503, times=2)
    [delivery] = await alerts(rig, sub["id"], 0)
    await rig.run()
    await receiver.wait_for(1)
    await rig.later(1.0)
    await receiver.wait_for(2)
    await until(lambda: _dead_ids(rig, {}, [delivery.key]), "the delivery is a dead letter")
    [letter] = await (await rig.api.get("/v1/deliveries/dead")).json()
    assert (letter["subscription_id"], letter["attempts"], letter["kind"]) == (sub["id"], 2, delivery.change.kind)
    assert "503" in letter["reason"]
    assert [d["id"] for d in json.loads(await vigie(rig, "deliveries", "dead", "--json"))] == [delivery.key]

    other, _ = await add_key(rig.settings, "other", ["read", "write"])
    as_other = {"Authorization": f"Bearer {other}"}
    assert await (await rig.api.get("/v1/deliveries/dead", headers=as_other)).json() == []
    assert (await rig.api.post(f"/v1/deliveries/{delivery.key}/replay", headers=as_other)).status == 404

    replayed = await rig.api.post(f"/v1/deliveries/{delivery.key}/replay")
    assert replayed.status == 202, await replayed.text()
    await rig.caught_up()
    accepted = (await receiver.wait_for(3))[2]
    assert accepted.headers["webhook-id"] == delivery.key
    assert accepted.verifies(sub["secret"])
    assert await (await rig.api.get("/v1/deliveries/dead")).json() == []
    assert "queued 0" in await vigie(rig, "deliveries", "replay", "--all")


async def _dead_ids(rig: Rig, headers: dict[str, str], expected: list[str]) -> bool:
    found: list[dict[str, Any]] = await (await rig.api.get("/v1/deliveries/dead", headers=headers)).json()
    return [d["id"] for d in found] == expected


@pytest.fixture
async def slow(runtime: str, tmp_path: Path) -> AsyncIterator[Rig]:
    """Retries 3 s apart: time enough to unsubscribe between two attempts."""
    async for one in made(runtime, tmp_path, Options(schedule="0,3,3")):
        yield one


async def test_unsubscribing_stops_the_retries(slow: Rig, receiver: RawReceiver) -> None:
    sub = await subscribe(slow, receiver.url("leaving"))
    receiver.answer(503, times=5)
    await alerts(slow, sub["id"], 0)
    await slow.run()
    await receiver.wait_for(1)
    assert (await slow.api.delete(f"/v1/subscriptions/{sub['id']}")).status == 204

    await slow.later(4.0)
    await slow.settled()
    assert len(receiver.requests) == 1, "the retry was dropped, not sent"
