"""The current-state view of the distributed runtime, in Redis GEO sets. See streams/view.py for what it holds.

Keys (one hash tag per view, so the Lua scripts touch a single cluster slot):

    {ns:view:dataset}:records     hash   entity → record JSON (core.codec.record_to_dict)
    {ns:view:dataset}:meta        hash   entity → {"key", "rank", "geo"}: the shown record and its GEO set
    {ns:view:dataset}:geo:<r>     GEO    entities with a point, one set per rating r (1..4, or "none")
    {ns:view:dataset}:ratings     set    the r in use, so `near` knows which sets to search

Upsert and remove are Lua scripts, so concurrent stream workers never leave an entity in two sets, or
show an older inspection over a newer one. `max_rating` filters server-side by searching only the sets
of ratings up to it. Distances are recomputed with core.geo.haversine_m from each record's own point:
Redis measures on a slightly larger sphere and on 52-bit geohashes, so its search radius is widened a
little and the exact filter applied here, which keeps results equal to the SQLite view's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from itertools import accumulate
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from core.codec import record_from_dict, record_to_dict
from core.geo import EARTH_RADIUS_M, Point
from core.model import Change, Record
from core.profiles import Profile, profile_for
from streams.view import (
    DEFAULT_LIMIT,
    UPSERT,
    check_dataset,
    nearest,
    placeable,
    query_center,
    rank,
    rated_at_most,
    steps,
)

REDIS_EARTH_RADIUS_M = 6372797.560856
WIDEN = REDIS_EARTH_RADIUS_M / EARTH_RADIUS_M
SLACK_M = 2.0  # more than the geohash rounding of a stored point (< 1 m)
NO_RATING = "none"
CHUNK = 500

# Byte order, not strcoll: Redis sets LC_COLLATE from its environment, and Lua's `<` on strings follows it.
BEFORE = """
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
"""

# KEYS: records, meta, ratings, geo set of the new record. ARGV: entity, json, key, rank, placed, lon, lat, tag
UPSERT_LUA = BEFORE + """
local shown = redis.call('HGET', KEYS[2], ARGV[1])
if shown then
  local m = cjson.decode(shown)
  if m.key ~= ARGV[3] and before(ARGV[4], m.rank) then return 0 end
  if m.geo ~= '' then redis.call('ZREM', m.geo, ARGV[1]) end
end
local geo = ''
if ARGV[5] == '1' then
  geo = KEYS[4]
  redis.call('GEOADD', geo, ARGV[6], ARGV[7], ARGV[1])
  redis.call('SADD', KEYS[3], ARGV[8])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode({key = ARGV[3], rank = ARGV[4], geo = geo}))
return 1
"""

# KEYS: records, meta. ARGV: entity, key
REMOVE_LUA = """
local shown = redis.call('HGET', KEYS[2], ARGV[1])
if not shown then return 0 end
local m = cjson.decode(shown)
if m.key ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if m.geo ~= '' then redis.call('ZREM', m.geo, ARGV[1]) end
return 1
"""


class RedisCurrentView:
    """streams.view.CurrentView in Redis."""

    def __init__(self, url: str, *, dataset: str, namespace: str = "vigie", profile: Profile | None = None) -> None:
        self.url = url
        self.dataset = dataset
        self.profile = profile or profile_for(dataset)
        self._redis = Redis.from_url(url)
        self._tag = f"{{{namespace}:view:{dataset}}}"
        self._records, self._meta, self._ratings = (f"{self._tag}:records", f"{self._tag}:meta",
                                                    f"{self._tag}:ratings")
        self._upsert = self._redis.register_script(UPSERT_LUA)
        self._remove = self._redis.register_script(REMOVE_LUA)

    def _geo(self, tag: str) -> str:
        return f"{self._tag}:geo:{tag}"

    async def upsert(self, record: Record) -> bool:
        check_dataset(self, record)
        return bool(await self._upsert_call(record, self._redis))

    async def remove(self, record: Record) -> bool:
        check_dataset(self, record)
        return bool(await self._remove_call(record, self._redis))

    def _upsert_call(self, record: Record, client: Redis | Pipeline) -> Awaitable[Any]:
        point = placeable(record)
        tag = NO_RATING if record.rating is None else str(record.rating)
        args = [record.entity, orjson.dumps(record_to_dict(record)), record.key, rank(record, self.profile),
                "0" if point is None else "1", point.lon if point else 0, point.lat if point else 0, tag]
        keys = [self._records, self._meta, self._ratings, self._geo(tag)]
        return self._upsert(keys=keys, args=args, client=client)

    def _remove_call(self, record: Record, client: Redis | Pipeline) -> Awaitable[Any]:
        return self._remove(keys=[self._records, self._meta], args=[record.entity, record.key], client=client)

    async def apply(self, changes: Iterable[Change]) -> int:
        """In order, `CHUNK` changes per round trip (one pipeline of scripts)."""
        mine = [change for change in changes if change.dataset == self.dataset]
        applied = 0
        for start in range(0, len(mine), CHUNK):
            planned = [steps(change) for change in mine[start:start + CHUNK]]
            async with self._redis.pipeline(transaction=False) as pipe:
                for action, record in (step for plan in planned for step in plan):
                    call = self._upsert_call if action == UPSERT else self._remove_call
                    await call(record, pipe)
                results = await pipe.execute()
            ends = list(accumulate(len(plan) for plan in planned))
            applied += sum(any(results[end - len(plan):end]) for plan, end in zip(planned, ends, strict=True))
        return applied

    async def get(self, entity: str) -> Record | None:
        raw = await self._redis.hget(self._records, entity)
        return None if raw is None else record_from_dict(orjson.loads(raw))

    async def near(self, lat: float, lon: float, radius_m: float, *, max_rating: int | None = None,
                   limit: int = DEFAULT_LIMIT) -> list[tuple[Record, float]]:
        center = query_center(lat, lon, radius_m, limit)
        tags = [tag for tag in map(_text, await self._redis.smembers(self._ratings))
                if max_rating is None or (tag != NO_RATING and int(tag) <= max_rating)]
        entities = await self._search([self._geo(tag) for tag in tags], center, radius_m * WIDEN + SLACK_M, limit)
        if not entities:
            return []
        records = [record_from_dict(orjson.loads(raw))
                   for raw in await self._redis.hmget(self._records, entities) if raw is not None]
        candidates = ((r.entity, r.point, r) for r in records  # re-checked: a write may land between two reads
                      if r.point is not None and rated_at_most(r.rating, max_rating))
        return nearest(candidates, center, radius_m, limit)

    async def _search(self, keys: Sequence[str], center: Point, radius: float, limit: int) -> list[str]:
        """Entities of `keys` that may be among the `limit` nearest within `radius` (Redis metres).

        A set that fills `limit` is searched again out to its farthest hit plus SLACK_M, so that points Redis
        ranks just behind (by its rounding) are not lost.
        """
        first = await self._geosearch(keys, center, [(radius, limit)] * len(keys))
        again = [(key, min(radius, hits[-1][1] + SLACK_M)) for key, hits in zip(keys, first, strict=True)
                 if len(hits) >= limit]
        second = await self._geosearch([k for k, _ in again], center, [(r, None) for _, r in again])
        return sorted({_text(member) for hits in (*first, *second) for member, _ in hits})

    async def _geosearch(self, keys: Sequence[str], center: Point,
                         bounds: Sequence[tuple[float, int | None]]) -> list[list[tuple[bytes, float]]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, (radius, count) in zip(keys, bounds, strict=True):
                pipe.geosearch(key, longitude=center.lon, latitude=center.lat, radius=radius, unit="m",
                               sort="ASC", count=count, withdist=True)
            results: list[list[tuple[bytes, float]]] = await pipe.execute()
        return results

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
