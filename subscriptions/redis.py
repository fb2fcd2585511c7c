"""Subscriptions of the distributed runtime: Redis is the authority, the compacted topic a published copy.

Keys (one hash tag per namespace, so every script touches a single cluster slot):

    {ns:subscriptions}:data         hash   id → JSON (core.codec.subscription_to_dict, secret included)
    {ns:subscriptions}:order        zset   id → creation sequence (kept on overwrite, like the SQLite store)
    {ns:subscriptions}:seq          int    the sequence: creation order and write versions
    {ns:subscriptions}:unpublished  hash   id → version of the last write not yet confirmed on the topic
    {ns:subscriptions}:epoch        str    the marker: when the store was first written (set once, kept)

**A Redis that comes back empty** (restarted without persistence, flushed) has lost the marker along with the
subscriptions and their secrets, while the compacted topic and the deliveries in flight still name them.
`lost()` says so (no marker and no sequence: a store written before the marker existed has a sequence), and
the roles refuse to treat the missing subscriptions as deleted (core.errors.StoreLost).

**Write Redis first, then publish.** Each write is one Lua script (data, order and the `unpublished` mark
change together); the publisher then sends the subscription *as Redis holds it now* (or a tombstone) and
clears the mark only if no newer write came in meanwhile, else sends again. So concurrent writers to one id
leave the topic's last message equal to Redis.

**Failure mode.** If publishing fails, Redis is ahead of the topic: the write is stored (reads see it, notifiers
use it) but stream workers do not match against it yet. `put`/`delete` then raise PublishError *after* the
write; retrying the call is safe (it is idempotent). The mark stays, and `republish_pending()` sends what is
left behind; `republish_all()` resends everything (after a topic was lost or recreated). runtime/ wires both:
the API role runs `republish_pending()` at start and then periodically, operators run
`vigie subscriptions republish [--all]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from core.codec import subscription_from_dict, subscription_to_dict
from core.errors import PublishError
from core.model import Subscription
from subscriptions.publisher import SubscriptionPublisher

log = logging.getLogger(__name__)

CHUNK = 500
MAX_PUBLISH_ROUNDS = 8

PUT = """
redis.call('SET', KEYS[5], ARGV[4], 'NX')
local version = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', version, ARGV[1])
if ARGV[3] == '1' then redis.call('HSET', KEYS[4], ARGV[1], version) end
return version
"""

DELETE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == '1' then redis.call('HSET', KEYS[4], ARGV[1], redis.call('INCR', KEYS[3])) end
return 1
"""

MARK = """
for _, id in ipairs(ARGV) do redis.call('HSET', KEYS[2], id, redis.call('INCR', KEYS[1])) end
return #ARGV
"""

SETTLE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


class RedisSubscriptionStore:
    """core.ports.SubscriptionStore on Redis; every write also goes to `publisher` when one is given.

    `aclose()` closes the Redis connections and the publisher.
    """

    def __init__(self, url: str, *, publisher: SubscriptionPublisher | None = None, namespace: str = "vigie") -> None:
        self.url = url
        self.namespace = namespace
        self._redis = Redis.from_url(url)
        self._publisher = publisher
        tag = f"{{{namespace}:subscriptions}}"
        self._data, self._order, self._seq, self._unpublished, self._epoch = (
            f"{tag}:data", f"{tag}:order", f"{tag}:seq", f"{tag}:unpublished", f"{tag}:epoch")
        self._put = self._redis.register_script(PUT)
        self._delete = self._redis.register_script(DELETE)
        self._mark = self._redis.register_script(MARK)
        self._settle = self._redis.register_script(SETTLE)

    @property
    def _keys(self) -> list[str]:
        return [self._data, self._order, self._seq, self._unpublished, self._epoch]

    @property
    def publishing(self) -> bool:
        """True when writes go to a publisher (and failed publications are tracked for `republish_pending`)."""
        return self._publisher is not None

    @property
    def _tracking(self) -> str:
        return "1" if self.publishing else "0"

    async def put(self, subscription: Subscription) -> None:
        """Insert or overwrite by id (an overwrite keeps its place in `all()`); then publish."""
        data = orjson.dumps(subscription_to_dict(subscription, include_secret=True))
        epoch = datetime.now(UTC).isoformat()
        await self._put(keys=self._keys, args=[subscription.id, data, self._tracking, epoch])
        await self._publish(subscription.id)

    async def lost(self) -> bool:
        """True when Redis holds no trace of this store: neither its marker nor its sequence. Ask it when there is
        evidence that subscriptions exist (a delivery names one, the topic holds some): a store never written to
        has no trace either."""
        return not await self._redis.exists(self._epoch, self._seq)

    async def get(self, subscription_id: str) -> Subscription | None:
        raw = await self._redis.hget(self._data, subscription_id)
        return None if raw is None else subscription_from_dict(orjson.loads(raw))

    async def get_many(self, subscription_ids: Iterable[str]) -> dict[str, Subscription]:
        """The subscriptions of these ids that exist, by id, in one round trip per CHUNK ids."""
        ids = list(dict.fromkeys(subscription_ids))
        found: dict[str, Subscription] = {}
        for start in range(0, len(ids), CHUNK):
            values = await self._redis.hmget(self._data, ids[start:start + CHUNK])
            for raw in values:
                if raw is not None:
                    subscription = subscription_from_dict(orjson.loads(raw))
                    found[subscription.id] = subscription
        return found

    async def delete(self, subscription_id: str) -> bool:
        """True when the subscription existed (and a tombstone is published), False otherwise."""
        removed = await self._delete(keys=self._keys, args=[subscription_id, self._tracking])
        if removed:
            await self._publish(subscription_id)
        return bool(removed)

    async def all(self) -> list[Subscription]:
        """Every subscription in creation order. Not a snapshot: a write during the read may or may not show."""
        ids = await self._ids()
        found: list[Subscription] = []
        for start in range(0, len(ids), CHUNK):
            values = await self._redis.hmget(self._data, ids[start:start + CHUNK])
            found.extend(subscription_from_dict(orjson.loads(raw)) for raw in values if raw is not None)
        return found

    async def _ids(self) -> list[str]:
        return [_text(raw) for raw in await self._redis.zrange(self._order, 0, -1)]

    async def pending(self) -> list[str]:
        """Ids whose last write is not confirmed on the topic yet."""
        return sorted(_text(raw) for raw in await self._redis.hkeys(self._unpublished))

    async def republish_pending(self) -> list[str]:
        """Publish every write left behind by a failed publish; the ids sent. PublishError when one still fails."""
        ids = await self.pending()
        await self._publish_many(ids)
        return ids

    async def republish_all(self) -> int:
        """Resend every subscription (and the tombstones still pending) to the topic; how many ids were sent."""
        if self._publisher is None:
            raise PublishError("this store has no publisher", retriable=False)
        ids = await self._ids()
        for start in range(0, len(ids), CHUNK):
            await self._mark(keys=[self._seq, self._unpublished], args=ids[start:start + CHUNK])
        return len(await self.republish_pending())

    async def _publish_many(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), CHUNK // 5):
            await asyncio.gather(*(self._publish(sid) for sid in ids[start:start + CHUNK // 5]))

    async def _publish(self, subscription_id: str) -> None:
        """Send the id's current state until the topic has caught up with Redis (or give up, leaving the mark)."""
        if self._publisher is None:
            return
        for _ in range(MAX_PUBLISH_ROUNDS):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hget(self._data, subscription_id)
                pipe.hget(self._unpublished, subscription_id)
                raw, version = await pipe.execute()
            if version is None:
                return
            current = None if raw is None else subscription_from_dict(orjson.loads(raw))
            try:
                await self._publisher.publish(subscription_id, current)
            except PublishError:
                log.warning("subscription %s stored but not published; it stays pending until republished",
                            subscription_id, extra={"subscription_id": subscription_id})
                raise
            if await self._settle(keys=[self._unpublished], args=[subscription_id, version]):
                return
        log.warning("subscription %s still changing after %d publish rounds; left pending", subscription_id,
                    MAX_PUBLISH_ROUNDS, extra={"subscription_id": subscription_id})

    async def aclose(self) -> None:
        try:
            if self._publisher is not None:
                await self._publisher.aclose()
        finally:
            await self._redis.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
