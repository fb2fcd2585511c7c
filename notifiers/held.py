"""Deliveries the distributed notifier holds for a digest or quiet hours (core/schedule.py), in Redis until due.

    {ns}:held:<channel>    sorted set: score = release time (Unix seconds), member = the consumed record as JSON
                           {"key": Kafka key, "value": the delivery envelope, "attempt": attempts made}

The notifier adds a batch's held deliveries before it commits the batch's offsets, and a release loop moves those
that are due to `deliveries.<channel>.retry` (produced first, then removed: a crash in between sends one twice,
which the guard's done marks absorb). Released together, a digest's alerts are read in one batch and merged.
Kept out of Kafka's retry topic because its consumer pauses a partition at the first record not yet due: a
night-long hold would stall every retry behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Held:
    key: bytes | None
    value: bytes
    attempt: int
    member: bytes = b""


class HeldDeliveries:
    def __init__(self, url: str, *, namespace: str, channel: str) -> None:
        self._redis = Redis.from_url(url)
        self._key = f"{namespace}:held:{channel}"

    async def hold_many(self, items: Sequence[tuple[float, Held]]) -> None:
        if items:
            await self._redis.zadd(self._key, {_member(held): until for until, held in items})

    async def due(self, now: float, limit: int = 500) -> list[Held]:
        members = await self._redis.zrangebyscore(self._key, "-inf", now, start=0, num=limit)
        return [_held(bytes(member)) for member in members if isinstance(member, bytes)]

    async def forget(self, held: Sequence[Held]) -> None:
        if held:
            await self._redis.zrem(self._key, *[h.member for h in held])

    async def count(self) -> int:
        return int(await self._redis.zcard(self._key))

    async def aclose(self) -> None:
        await self._redis.aclose()


def _member(held: Held) -> bytes:
    key = None if held.key is None else held.key.decode()
    return orjson.dumps({"key": key, "value": held.value.decode(), "attempt": held.attempt})


def _held(member: bytes) -> Held:
    doc = orjson.loads(member)
    key = None if doc["key"] is None else str(doc["key"]).encode()
    return Held(key, str(doc["value"]).encode(), int(doc["attempt"]), member)


Produce = Callable[[Held], Awaitable[None]]


async def release_forever(store: HeldDeliveries, produce: Produce, clock: Callable[[], float], stop: asyncio.Event,
                          *, every_s: float = 1.0) -> None:
    """Every `every_s`, move the held deliveries that are due to the retry topic (`produce`), then forget them."""
    while not stop.is_set():
        try:
            due = await store.due(clock())
            for held in due:
                await produce(held)
            await store.forget(due)
            if due:
                log.info("released %d held delivery(ies)", len(due))
        except Exception:  # Redis or Kafka trouble: the held deliveries stay held, asked again next round
            log.exception("releasing held deliveries failed", extra={"collapse": True})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
