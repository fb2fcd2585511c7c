"""Tenants' API keys on Redis (the distributed runtime), shared by every API replica.

    {ns:keys}:data    hash   key id → JSON (subscriptions.keys.ApiKey.to_dict: the secret's digest, never the key)
"""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from subscriptions.keys import ApiKey

REVOKE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local key = cjson.decode(raw)
if key['revoked'] then return 0 end
key['revoked'] = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(key))
return 1
"""


class RedisKeyStore:
    """subscriptions.keys.KeyStore on Redis."""

    def __init__(self, url: str, *, namespace: str = "vigie") -> None:
        self._redis = Redis.from_url(url)
        self._data = f"{{{namespace}:keys}}:data"
        self._revoke = self._redis.register_script(REVOKE)

    async def add(self, key: ApiKey) -> None:
        await self._redis.hset(self._data, key.id, orjson.dumps(key.to_dict()))

    async def get(self, key_id: str) -> ApiKey | None:
        raw = await self._redis.hget(self._data, key_id)
        return None if raw is None else ApiKey.from_dict(orjson.loads(raw))

    async def all(self) -> list[ApiKey]:
        keys = [ApiKey.from_dict(orjson.loads(raw)) for raw in (await self._redis.hgetall(self._data)).values()]
        return sorted(keys, key=lambda k: (k.tenant, k.created_at))

    async def revoke(self, key_id: str) -> bool:
        return bool(await self._revoke(keys=[self._data], args=[key_id]))

    async def aclose(self) -> None:
        await self._redis.aclose()
