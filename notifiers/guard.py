"""Delivery guard of the distributed notifier, in Redis: each alert sent once, and never faster than allowed.

**Once.** Kafka redelivers after a crash or a rebalance, so two notifiers may hold the same delivery. Before
sending, a notifier claims the delivery's idempotency key (`SET key owner NX PX claim_ttl`):

    claim(key)  → CLAIMED       send it, then done(key) (the key then says "done" for `done_ttl`, 7 days)
                                or, when sending failed, release(key) so a retry can claim it at once
                → ALREADY_DONE  it was sent: commit the offset and move on
                → BUSY          another notifier is sending it right now: retry later
                                (if that notifier died, its claim expires after `claim_ttl`)

A notifier that dies between sending and done(key) leaves a claim that expires, and the alert is sent again:
at-least-once, which receivers dedupe on the same key (webhook-id). `claim_ttl` must exceed a send's timeout.

**Not too fast.** Per-destination rate limits are GCRA buckets (a token bucket without a refill timer), checked
and updated atomically by one Lua script on Redis's clock, so every notifier replica shares them. The policy is
data (`RATE_POLICY`, channel → limits): a limit applies per destination or to the whole channel, and a delivery
passes only when every limit of its channel lets it (Telegram: 30/s for the bot, 1/s per chat).

    acquire(...) → 0.0   a slot was taken: send now
                 → s > 0 nothing was taken: ask again in s seconds (or re-queue the delivery)

Keys (destinations are hashed, so no URL or token lands in Redis):

    {ns}:delivery:<key>            owner id while claimed, "done" once sent
    {ns:rate}:<channel>:<hash>     a bucket's theoretical arrival time, in µs of Redis time
                                   (`<channel>:*` for a channel-wide limit, `any:<hash>` for plain `acquire`)
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from redis.asyncio import Redis

from core.model import stable_hash
from notifiers.ratelimit import Rate

log = logging.getLogger(__name__)

DONE = "done"
CLAIM_TTL_S = 120.0
DONE_TTL_S = 7 * 24 * 3600.0

CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'claimed' end
local current = redis.call('GET', KEYS[1])
if current == 'done' then return 'already_done' end
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 'claimed' end
return 'busy'
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: buckets; ARGV: interval (µs per slot) and burst, for each bucket in turn. Returns µs to wait, 0 when taken.
GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait, tats = 0, {}
for i, key in ipairs(KEYS) do
  local interval, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = math.max(tonumber(redis.call('GET', key) or 0), now) + interval
  wait = math.max(wait, tat - burst * interval - now)
  tats[i] = tat
end
if wait > 0 then return math.ceil(wait) end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return 0
"""


class Claim(StrEnum):
    CLAIMED = "claimed"
    ALREADY_DONE = "already_done"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Limit:
    """`rate` for each destination of a channel, or for the channel as a whole (`per="channel"`)."""

    rate: Rate
    per: Literal["destination", "channel"] = "destination"


RATE_POLICY: Mapping[str, tuple[Limit, ...]] = MappingProxyType({
    "slack": (Limit(Rate(1.0)),),  # about one message per second per channel
    "webhook": (Limit(Rate(20.0, burst=20.0)),),  # per URL
    "tg": (Limit(Rate(30.0, burst=30.0), per="channel"), Limit(Rate(1.0))),  # 30/s for the bot, 1/s per chat
})


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    rate: Rate


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryGuard:
    """Claims on idempotency keys and shared rate limits, for every notifier replica on one Redis."""

    def __init__(self, url: str, *, namespace: str = "vigie", owner: str | None = None,
                 claim_ttl_s: float = CLAIM_TTL_S, done_ttl_s: float = DONE_TTL_S,
                 policy: Mapping[str, Sequence[Limit]] = RATE_POLICY) -> None:
        self.owner = owner or default_owner()
        if self.owner == DONE:
            raise ValueError(f"an owner cannot be called {DONE!r}")
        self.namespace = namespace
        self.policy = policy
        self._claim_ttl_ms = _ms(claim_ttl_s)
        self._done_ttl_ms = _ms(done_ttl_s)
        self._redis = Redis.from_url(url)
        self._claim = self._redis.register_script(CLAIM)
        self._release = self._redis.register_script(RELEASE)
        self._gcra = self._redis.register_script(GCRA)

    def _key(self, key: str) -> str:
        return f"{self.namespace}:delivery:{key}"

    async def claim(self, key: str) -> Claim:
        """Take the right to send `key` for `claim_ttl` (a claim we already hold is extended)."""
        result = await self._claim(keys=[self._key(key)], args=[self.owner, self._claim_ttl_ms])
        claim = Claim(_text(result))
        if claim is not Claim.CLAIMED:
            log.debug("delivery %s is %s", key, claim.value, extra={"delivery_key": key})
        return claim

    async def done(self, key: str) -> None:
        """`key` was sent: later claims answer ALREADY_DONE for `done_ttl`."""
        await self._redis.set(self._key(key), DONE, px=self._done_ttl_ms)

    async def claim_many(self, keys: Sequence[str]) -> list[Claim]:
        """`claim` for each key, in one round trip (a pipeline of the same script)."""
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                await self._claim(keys=[self._key(key)], args=[self.owner, self._claim_ttl_ms], client=pipe)
            results = await pipe.execute()
        return [Claim(_text(result)) for result in results]

    async def done_many(self, keys: Sequence[str]) -> None:
        """`done` for each key, in one round trip."""
        if not keys:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(self._key(key), DONE, px=self._done_ttl_ms)
            await pipe.execute()

    async def acquire_many(self, wanted: Sequence[tuple[str, str]]) -> list[float]:
        """`acquire_for(channel, destination)` for each pair in turn, in one round trip; seconds to wait each."""
        if not wanted:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            queued = []
            for channel, destination in wanted:
                buckets = buckets_for(self.policy, channel, destination)
                queued.append(bool(buckets))
                if buckets:
                    keys, args = self._gcra_call(buckets)
                    await self._gcra(keys=keys, args=args, client=pipe)
            results = iter(await pipe.execute())
        return [int(next(results)) / 1_000_000 if has else 0.0 for has in queued]

    async def release(self, key: str) -> bool:
        """Give up our claim after a failed send; False when we no longer held it (expired, or done)."""
        return bool(await self._release(keys=[self._key(key)], args=[self.owner]))

    async def acquire(self, destination: str, rate: float, burst: float = 1.0) -> float:
        """One slot of `rate` per second (up to `burst` at once) for `destination`; seconds to wait, 0.0 if taken."""
        return await self.acquire_all([Bucket(f"any:{stable_hash(destination)}", Rate(rate, burst))])

    async def acquire_for(self, channel: str, destination: str) -> float:
        """Like `acquire`, with every limit `policy` sets for `channel` (none: always 0.0)."""
        return await self.acquire_all(buckets_for(self.policy, channel, destination))

    async def acquire_all(self, buckets: Sequence[Bucket]) -> float:
        """A slot in every bucket, or in none; the seconds until all could give one."""
        if not buckets:
            return 0.0
        keys, args = self._gcra_call(buckets)
        waited_us = await self._gcra(keys=keys, args=args)
        return int(waited_us) / 1_000_000

    def _gcra_call(self, buckets: Sequence[Bucket]) -> tuple[list[str], list[float]]:
        args: list[float] = []
        for bucket in buckets:
            args += [1_000_000 / bucket.rate.per_second, bucket.rate.burst]
        return [f"{{{self.namespace}:rate}}:{bucket.name}" for bucket in buckets], args

    async def admit(self, channel: str, destination: str,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> float:
        """Wait until `acquire_for` gives a slot; the seconds spent waiting."""
        waited = 0.0
        while (delay := await self.acquire_for(channel, destination)) > 0:
            await sleep(delay)
            waited += delay
        return waited

    async def aclose(self) -> None:
        await self._redis.aclose()


def buckets_for(policy: Mapping[str, Sequence[Limit]], channel: str, destination: str) -> list[Bucket]:
    """The buckets a delivery to `destination` must pass, named without revealing the destination."""
    return [
        Bucket(f"{channel}:*" if limit.per == "channel" else f"{channel}:{stable_hash(destination)}", limit.rate)
        for limit in policy.get(channel, ())
    ]


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError(f"a TTL must be positive, got {seconds}s")
    return max(1, round(seconds * 1000))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
