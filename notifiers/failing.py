"""Endpoints that keep failing: one that has failed every delivery for `disable_after` is disabled.

Both workers tell an `EndpointWatch` about each failure and each success. The watch keeps, per destination, when
its current run of failures began (`Failures`: the embedded runtime's SQLite table, notifiers/failing_sqlite.py, or
the distributed runtime's Redis hash here); a success ends the run. When a failure comes `disable_after` or more
after the run began, the watch reports the destination to `on_refused` (runtime/ disables every subscription to
it, with the reason `vigie subscriptions list` and the API show, and logs it), as a 410 Gone does at once.

    {ns}:failing:<channel>     hash   sha256(destination) → Unix time of the first failure of the current run
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from notifiers import mask
from notifiers.base import Refused

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


class Failures(Protocol):
    """When each destination's current run of failures began."""

    async def failed(self, destination: str, at: float) -> float:
        """Record a failure at `at` (Unix time); the start of the run it belongs to."""
        ...

    async def succeeded(self, destinations: Collection[str]) -> None:
        """These destinations accepted something: their runs of failures are over."""
        ...


def reason(since: datetime, period: timedelta, error: str) -> str:
    days = period.total_seconds() / 86_400
    span = f"{days:g} day(s)" if days >= 1 else f"{period.total_seconds():g} s"
    return f"failing continuously since {since.isoformat(timespec='seconds')} (over {span}); last error: {error}"


class EndpointWatch:
    """Disables a destination whose failures have lasted `disable_after` (see the module docstring)."""

    def __init__(self, failures: Failures, disable_after: timedelta, on_refused: Refused | None) -> None:
        self._failures = failures
        self._period = disable_after
        self._on_refused = on_refused

    async def failed(self, destination: str, at: datetime, error: str) -> bool:
        """Record a failure; True when the destination has now been disabled."""
        since = datetime.fromtimestamp(await self._failures.failed(destination, at.timestamp()), UTC)
        if at - since < self._period or self._on_refused is None:
            return False
        log.warning("%s has failed every delivery since %s: disabling it", mask(destination), since.isoformat(),
                    extra={"since": since.isoformat()})
        await self._on_refused(destination, reason(since, self._period, error))
        await self._failures.succeeded([destination])  # the run is dealt with; re-enabling starts afresh
        return True

    async def succeeded(self, destinations: Collection[str]) -> None:
        if destinations:
            await self._failures.succeeded(destinations)


class MemoryFailures:
    def __init__(self) -> None:
        self.since: dict[str, float] = {}

    async def failed(self, destination: str, at: float) -> float:
        return self.since.setdefault(destination, at)

    async def succeeded(self, destinations: Collection[str]) -> None:
        for destination in destinations:
            self.since.pop(destination, None)


def _field(destination: str) -> str:
    return hashlib.sha256(destination.encode()).hexdigest()  # no URL or token lands in Redis


class RedisFailures:
    """Failures in Redis, shared by every notifier replica of a channel."""

    def __init__(self, url: str, *, namespace: str = "vigie", channel: str) -> None:
        from redis.asyncio import Redis  # noqa: PLC0415 - the redis extra: the embedded runtime runs without it

        self._redis: Redis = Redis.from_url(url)
        self._key = f"{namespace}:failing:{channel}"

    async def failed(self, destination: str, at: float) -> float:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self._key, _field(destination), f"{at:.3f}")
            pipe.hget(self._key, _field(destination))
            _, since = await pipe.execute()
        return float(since)

    async def succeeded(self, destinations: Collection[str]) -> None:
        if destinations:
            await self._redis.hdel(self._key, *{_field(d) for d in destinations})

    async def aclose(self) -> None:
        await self._redis.aclose()
