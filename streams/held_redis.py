"""Dataset events (mass rewrites held back, core/storms.py) in Redis, for the distributed runtime.

    {ns}:events              hash   event id → HeldEvent JSON (released_at set once released)
    {ns}:event:<id>:held     hash   change id → `core.codec.change_to_dict` JSON, deleted on release

The Kafka gate (streams/kafka_gate.py) writes an event and its changes before it publishes anything about them,
so a gate that dies in between writes the same keys again. `vigie sources` lists the events and `vigie sources
release` publishes the held changes to `changes` and then marks the event released.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from core.codec import change_from_dict, change_to_dict
from core.model import Change
from core.storms import DatasetEvent
from streams.held_sqlite import HeldEvent


class RedisHeldEvents:
    def __init__(self, url: str, *, namespace: str = "vigie") -> None:
        self._redis = Redis.from_url(url)
        self._events = f"{namespace}:events"
        self._prefix = f"{namespace}:event:"

    def _held(self, event_id: str) -> str:
        return f"{self._prefix}{event_id}:held"

    async def hold(self, event: DatasetEvent, changes: Sequence[Change]) -> None:
        """Store the event and what it holds (idempotent: the same event written twice is the same keys)."""
        held = HeldEvent(event.id, event.source, event.dataset, event.version, event.fields, event.count,
                         event.rows, event.detected_at.isoformat(), None)
        pipe = self._redis.pipeline(transaction=True)
        if changes:
            pipe.hset(self._held(event.id), mapping={c.id: orjson.dumps(change_to_dict(c)) for c in changes})
        pipe.hsetnx(self._events, event.id, orjson.dumps(held.to_dict()))
        await pipe.execute()

    async def events(self) -> list[HeldEvent]:
        raw = await self._redis.hgetall(self._events)
        found = [_event(orjson.loads(value)) for value in raw.values()]
        return sorted(found, key=lambda e: (e.detected_at, e.id))

    async def held(self, event_id: str) -> list[Change]:
        raw = await self._redis.hgetall(self._held(event_id))
        return [change_from_dict(orjson.loads(raw[k])) for k in sorted(raw)]

    async def mark_released(self, event: HeldEvent, at: datetime) -> None:
        done = HeldEvent(event.id, event.source, event.dataset, event.version, event.fields, event.count,
                         event.rows, event.detected_at, at.isoformat())
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._events, event.id, orjson.dumps(done.to_dict()))
        pipe.delete(self._held(event.id))
        await pipe.execute()

    async def aclose(self) -> None:
        await self._redis.aclose()


def _event(d: dict[str, Any]) -> HeldEvent:
    return HeldEvent(str(d["id"]), str(d["source"]), str(d["dataset"]), str(d["version"]),
                     tuple(str(f) for f in d["fields"]), int(d["count"]), int(d["rows"]), str(d["detected_at"]),
                     None if d.get("released_at") is None else str(d["released_at"]))
