"""The distributed runtime's change log: a Redis stream (`{ns}:changes`) the view updater appends every published
change to, read by the catch-up feed and previews.

Why a Redis stream rather than the Kafka `changes` topic read by offsets: the topic has several partitions, so a
position there is a vector of offsets and a merged order would depend on who reads; the API role would also need
a Kafka consumer per request. A stream gives one total order and one id per entry (its append time in ms, then a
counter), pages with `XRANGE (id + COUNT n`, finds "the last N days" with `XRANGE <ms>-0 +`, and is trimmed by time
(`XADD … MINID ~ now - retention`, cheap, whole radix-tree nodes at a time). Appends happen after the view is
folded in and before the updater commits its offsets, so a crash may append a batch twice: the feed is at least
once, entries keep their change id (and the feed's event ids are idempotency keys) for receivers to dedupe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import orjson
from redis.asyncio import Redis

from core.codec import change_from_dict, change_to_dict
from core.model import Change

DEFAULT_RETENTION = timedelta(days=30)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RedisChangeLog:
    """core.ports.ChangeLog, and `append` for the view updater."""

    def __init__(self, url: str, *, namespace: str = "vigie", retention: timedelta = DEFAULT_RETENTION,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self._redis = Redis.from_url(url)
        self.key = f"{namespace}:changes"
        self._retention = retention
        self._clock = clock

    async def append(self, changes: Sequence[Change]) -> None:
        """Add `changes` in order, dropping entries older than the retention."""
        if not changes:
            return
        oldest = f"{_ms(self._clock() - self._retention)}-0"
        pipe = self._redis.pipeline(transaction=False)
        for change in changes:
            pipe.xadd(self.key, {"c": orjson.dumps(change_to_dict(change))}, minid=oldest, approximate=True)
        await pipe.execute()

    async def after(self, position: str | None, limit: int) -> list[tuple[str, Change]]:
        start = f"({position}" if position else "-"
        entries = await self._entries(start, limit)
        return [(_text(entry_id), change_from_dict(orjson.loads(fields[b"c"]))) for entry_id, fields in entries]

    async def _entries(self, start: str, limit: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        found = await self._redis.xrange(self.key, min=start, max="+", count=limit)
        return cast("list[tuple[bytes, dict[bytes, bytes]]]", found or [])

    async def since(self, moment: datetime, limit: int) -> list[Change]:
        entries = await self._entries(f"{_ms(moment)}-0", limit)
        changes = (change_from_dict(orjson.loads(fields[b"c"])) for _, fields in entries)
        return [change for change in changes if change.detected_at >= moment]  # appended later than detected

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id
