"""notifiers.guard on real Redis: claims on idempotency keys and shared GCRA rate limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import pytest
from redis.asyncio import Redis

from notifiers.guard import CLAIM_TTL_S, RATE_POLICY, Claim, DeliveryGuard, Limit, buckets_for
from notifiers.ratelimit import Rate

pytestmark = pytest.mark.redis
DEADLINE_S = 10.0



class GuardFactory(Protocol):
    def __call__(self, *, owner: str | None = None, claim_ttl_s: float = CLAIM_TTL_S,
                 policy: Mapping[str, Sequence[Limit]] = RATE_POLICY) -> DeliveryGuard: ...


async def poll_until(check: Callable[[], Awaitable[bool]], *, every_s: float = 0.01) -> bool:
    """Ask `check` until it says yes or DEADLINE_S passes; whether it said yes."""
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
    return True


@pytest.fixture
async def guards(redis_url: str) -> AsyncIterator[GuardFactory]:
    """Guards sharing one fresh namespace; closed, and their keys deleted, afterwards."""
    namespace = f"test-guard-{uuid.uuid4().hex[:12]}"
    made: list[DeliveryGuard] = []

    def make(*, owner: str | None = None, claim_ttl_s: float = CLAIM_TTL_S,
             policy: Mapping[str, Sequence[Limit]] = RATE_POLICY) -> DeliveryGuard:
        guard = DeliveryGuard(redis_url, namespace=namespace, owner=owner, claim_ttl_s=claim_ttl_s, policy=policy)
        made.append(guard)
        return guard

    yield make
    for guard in made:
        await guard.aclose()
    client = Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
    keys += [k async for k in client.scan_iter(match=f"{{{namespace}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_concurrent_claimers_exactly_one_wins(guards: GuardFactory) -> None:
    replicas = [guards(owner=f"notifier-{i}") for i in range(12)]
    results = await asyncio.gather(*(guard.claim("k-race") for guard in replicas))
    assert sorted(results) == sorted([Claim.CLAIMED] + [Claim.BUSY] * 11)


async def test_done_answers_already_done_to_everyone(guards: GuardFactory, redis_url: str) -> None:
    first, second = guards(owner="a"), guards(owner="b")
    assert await first.claim("k1") is Claim.CLAIMED
    await first.done("k1")
    assert await first.claim("k1") is Claim.ALREADY_DONE
    assert await second.claim("k1") is Claim.ALREADY_DONE
    assert await first.release("k1") is False
    assert await second.claim("k1") is Claim.ALREADY_DONE
    client = Redis.from_url(redis_url)
    ttl_ms = await client.pttl(f"{first.namespace}:delivery:k1")
    await client.aclose()
    assert 6 * 24 * 3600 * 1000 < ttl_ms <= 7 * 24 * 3600 * 1000


async def test_release_makes_it_claimable(guards: GuardFactory) -> None:
    first, second = guards(owner="a"), guards(owner="b")
    assert await first.claim("k2") is Claim.CLAIMED
    assert await second.claim("k2") is Claim.BUSY
    assert await second.release("k2") is False  # not its claim: left alone
    assert await second.claim("k2") is Claim.BUSY
    assert await first.release("k2") is True
    assert await second.claim("k2") is Claim.CLAIMED


async def test_owner_may_claim_again(guards: GuardFactory) -> None:
    guard = guards(owner="a")
    assert await guard.claim("k3") is Claim.CLAIMED
    assert await guard.claim("k3") is Claim.CLAIMED


async def test_claim_of_a_dead_owner_expires(guards: GuardFactory) -> None:
    dead, alive = guards(owner="dead", claim_ttl_s=0.3), guards(owner="alive")
    assert await dead.claim("k4") is Claim.CLAIMED
    assert await alive.claim("k4") is Claim.BUSY
    started = time.monotonic()

    async def claimed() -> bool:
        return await alive.claim("k4") is Claim.CLAIMED

    assert await poll_until(claimed)
    assert time.monotonic() - started >= 0.2
    assert await dead.release("k4") is False


def test_owner_cannot_be_the_done_marker(redis_url: str) -> None:
    with pytest.raises(ValueError, match="owner"):
        DeliveryGuard(redis_url, owner="done")


async def test_burst_then_wait_times(guards: GuardFactory) -> None:
    guard = guards()
    destination = "webhook+https://partner.example/hooks/a"
    assert [await guard.acquire(destination, rate=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    first_wait = await guard.acquire(destination, rate=2.0, burst=3)
    assert 0.0 < first_wait <= 0.5
    again = await guard.acquire(destination, rate=2.0, burst=3)
    assert 0.0 < again <= first_wait  # a refusal takes nothing: waits do not pile up
    assert await guard.acquire("webhook+https://partner.example/hooks/b", rate=2.0, burst=3) == 0.0


async def test_a_slot_comes_back_after_the_wait(guards: GuardFactory) -> None:
    guard = guards()
    assert await guard.acquire("slack://C1", rate=20.0) == 0.0
    wait = await guard.acquire("slack://C1", rate=20.0)
    assert 0.0 < wait <= 0.05

    async def admitted() -> bool:
        return await guard.acquire("slack://C1", rate=20.0) == 0.0

    assert await poll_until(admitted, every_s=0.005)
    assert await guard.acquire("slack://C1", rate=20.0) > 0  # the slot just taken is spent


async def test_policy_limits_the_channel_and_each_destination_all_or_none(
    guards: GuardFactory, redis_url: str
) -> None:
    policy = {"tg": (Limit(Rate(0.5, burst=3), per="channel"), Limit(Rate(0.1)))}
    guard = guards(policy=policy)
    assert [await guard.acquire_for("tg", f"tg://chat-{i}") for i in range(3)] == [0.0, 0.0, 0.0]
    assert 0.0 < await guard.acquire_for("tg", "tg://chat-0") <= 10.0  # that chat: 1 per 10 s
    assert 0.0 < await guard.acquire_for("tg", "tg://chat-new") <= 2.0  # the bot: 3 then 1 per 2 s
    client = Redis.from_url(redis_url)
    [_, chat_bucket] = buckets_for(policy, "tg", "tg://chat-new")
    exists = await client.exists(f"{{{guard.namespace}:rate}}:{chat_bucket.name}")
    await client.aclose()
    assert exists == 0  # refused by the channel's limit, so the chat's bucket was not touched


async def test_channels_without_a_limit_always_pass(guards: GuardFactory) -> None:
    guard = guards()
    assert [await guard.acquire_for("console", "console://") for _ in range(50)] == [0.0] * 50


async def test_default_policy(guards: GuardFactory) -> None:
    guard = guards()
    assert await guard.acquire_for("slack", "slack://xoxb-secret@C0123") == 0.0
    assert await guard.acquire_for("slack", "slack://xoxb-secret@C0123") > 0.0
    assert [await guard.acquire_for("webhook", "webhook+https://h.example/x") for _ in range(20)] == [0.0] * 20
    assert await guard.acquire_for("webhook", "webhook+https://h.example/x") > 0.0


async def test_admit_waits_for_a_slot(guards: GuardFactory) -> None:
    guard = guards(policy={"webhook": (Limit(Rate(25.0)),)})
    assert await guard.admit("webhook", "webhook+https://h.example/y") == 0.0
    started = time.monotonic()
    waited = await guard.admit("webhook", "webhook+https://h.example/y")
    assert 0.0 < waited <= 0.1
    assert time.monotonic() - started >= waited * 0.9


async def test_no_destination_text_in_redis_keys(guards: GuardFactory, redis_url: str) -> None:
    guard = guards()
    await guard.acquire_for("slack", "slack://xoxb-topsecret@C0123")
    await guard.acquire("webhook+https://h.example/topsecret", rate=1.0)
    client = Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{{{guard.namespace}:rate}}:*")]
    await client.aclose()
    assert len(keys) == 2
    assert not [k for k in keys if b"topsecret" in k]


async def test_claims_in_one_round_trip_answer_as_one_by_one(guards: GuardFactory) -> None:
    mine, theirs = guards(owner="mine"), guards(owner="theirs")
    assert await theirs.claim("k-busy") is Claim.CLAIMED
    assert await mine.claim("k-sent") is Claim.CLAIMED
    await mine.done("k-sent")
    assert await mine.claim_many(["k-new", "k-busy", "k-sent", "k-new"]) == [
        Claim.CLAIMED, Claim.BUSY, Claim.ALREADY_DONE, Claim.CLAIMED]  # our own claim again: still ours
    assert await mine.claim_many([]) == []
    await mine.done_many(["k-new", "k-busy"])
    assert await theirs.claim_many(["k-new", "k-busy"]) == [Claim.ALREADY_DONE, Claim.ALREADY_DONE]


async def test_rate_slots_in_one_round_trip_are_taken_in_order(guards: GuardFactory) -> None:
    policy = {"webhook": (Limit(Rate(1.0, burst=2)),)}
    guard = guards(policy=policy)
    a, b = "webhook+https://partner.example/a", "webhook+https://partner.example/b"
    waits = await guard.acquire_many([("webhook", a), ("webhook", a), ("console", "console://"), ("webhook", a),
                                      ("webhook", b)])
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.0 < waits[3] <= 1.0  # the third to `a` within its burst of 2
    assert waits[4] == 0.0
    assert 0.0 < await guard.acquire_for("webhook", a) <= 1.0  # the refusal took nothing, the two slots are spent
    assert await guard.acquire_many([]) == []
