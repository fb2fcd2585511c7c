"""What the diff agents were last sent, per source: the producer publishes only what changed since.

A republication of the national snapshot changes about one record in ten, yet sending every record made the
distributed runtime pay per record (a Kafka message and a changelog write each). The producer keeps, per source
URL, one compact digest per record key — the record's fingerprint (64 bits) and its partition key — and sends:

- the records whose fingerprint is new or moved (the diff agents decide what the change is, as before);
- for a complete snapshot, a *removal* per key that is gone (keyed by the partition key the digest kept, so it
  reaches the partition that holds the key's state); an incomplete snapshot removes nothing;
- the snapshot-end markers, saying `removals: "explicit"`: the diff agents remove only what they are told.

Until a complete snapshot went out whole (a first run, or after `vigie producer --full`) it sends every record and
markers saying `removals: "absent"`: the diff agents remove what a complete snapshot did not hold, as they always
did. The new
digests are saved only once every message is acknowledged, so a producer that dies mid-snapshot sends the same
messages again (same ids downstream).

Digests live in Redis, one hash per source: `<namespace>:digests:<url>`, key → "<fingerprint> <partition key>".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from core.model import Record
from core.profiles import Profile

FINGERPRINT_CHARS = 16  # 64 bits of the record's fingerprint
EXPLICIT, ABSENT = "explicit", "absent"
COMPLETE_MARK = "\x00complete"  # set once a complete snapshot went out whole: the digests know every key


def digest(record: Record, profile: Profile) -> str:
    return f"{record.fingerprint[:FINGERPRINT_CHARS]} {profile.partition_key(record)}"


@dataclass(frozen=True, slots=True)
class Delta:
    """What one snapshot sends, and how the digests move once it is acknowledged."""

    send: list[Record]
    removed: dict[str, str]  # key → partition key
    digests: dict[str, str] = field(default_factory=dict)  # key → digest, for the records sent
    removals: str = EXPLICIT

    complete: bool = True


def delta(records: list[Record], known: Mapping[str, str], *, complete: bool, profile: Profile) -> Delta:
    """The records to send against `known` digests. Until one complete snapshot went out whole, everything goes,
    with removals by absence: digests that never saw a complete snapshot cannot tell what is gone."""
    fresh = {r.key: digest(r, profile) for r in records}
    if COMPLETE_MARK not in known:
        return Delta(list(records), {}, fresh, ABSENT, complete)
    send = [r for r in records if known.get(r.key) != fresh[r.key]]
    gone = {k: d.partition(" ")[2] for k, d in known.items() if k not in fresh and k != COMPLETE_MARK} \
        if complete else {}
    return Delta(send, gone, {r.key: fresh[r.key] for r in send}, EXPLICIT, complete)


class RedisDigests:
    def __init__(self, url: str, *, namespace: str = "vigie") -> None:
        self._redis = Redis.from_url(url, decode_responses=True)
        self._prefix = f"{namespace}:digests:"

    async def load(self, source: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in (await self._redis.hgetall(self._prefix + source)).items()}

    async def save(self, source: str, moved: Delta) -> None:
        """Apply an acknowledged snapshot's delta (a full send replaces everything)."""
        name = self._prefix + source
        pipe = self._redis.pipeline(transaction=True)
        whole = moved.removals == ABSENT and moved.complete
        if whole:
            pipe.delete(name)
        fields: dict[Any, Any] = dict(moved.digests)
        if whole:
            fields[COMPLETE_MARK] = "1"
        if fields:
            pipe.hset(name, mapping=fields)
        if moved.removed:
            pipe.hdel(name, *moved.removed)
        await pipe.execute()

    async def forget(self, source: str) -> None:
        """The next snapshot of `source` goes out whole (`vigie producer --full`)."""
        await self._redis.delete(self._prefix + source)

    async def aclose(self) -> None:
        await self._redis.aclose()
