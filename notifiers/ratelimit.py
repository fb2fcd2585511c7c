"""Per-destination token buckets, in memory: a burst waits its turn, nothing is dropped.

Rates are data (`DEFAULT_RATES`, channel name → Rate) so a deployment can tighten them, and the
bucket itself is pure arithmetic on a monotonic clock passed in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_second` sustained, up to `burst` at once."""

    per_second: float
    burst: float = 1.0

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_second > 0 and burst >= 1, got {self}")


DEFAULT_RATES: Mapping[str, Rate] = MappingProxyType({
    "slack": Rate(1.0),  # Slack: about one message per second per channel
    "tg": Rate(1.0),  # Telegram: one message per second per chat
    "webhook": Rate(20.0, burst=20.0),
})


@dataclass(slots=True)
class TokenBucket:
    rate: Rate
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: Rate, now: float) -> TokenBucket:
        return cls(rate, rate.burst, now)

    def reserve(self, now: float) -> float:
        """Take a token; the seconds to wait before it may be used (0 when one is available now)."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.rate.burst, self.tokens + elapsed * self.rate.per_second) - 1.0
        self.updated = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate.per_second

    def idle(self, now: float) -> bool:
        """Full again: forgetting this bucket changes nothing."""
        return self.tokens + max(0.0, now - self.updated) * self.rate.per_second >= self.rate.burst


class RateLimiter:
    """`await acquire(channel, destination)` returns once sending to `destination` respects its channel's rate."""

    def __init__(self, rates: Mapping[str, Rate] = DEFAULT_RATES, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, max_buckets: int = 10_000) -> None:
        self._rates = rates
        self._monotonic = monotonic
        self._sleep = sleep
        self._max_buckets = max_buckets
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def __len__(self) -> int:
        """How many destinations are being tracked."""
        return len(self._buckets)

    def reserve(self, channel: str, destination: str) -> float:
        """Take a token for `destination`; the seconds to wait before sending."""
        rate = self._rates.get(channel)
        if rate is None:
            return 0.0
        now = self._monotonic()
        if len(self._buckets) >= self._max_buckets:
            self._buckets = {k: b for k, b in self._buckets.items() if not b.idle(now)}
        bucket = self._buckets.setdefault((channel, destination), TokenBucket.full(rate, now))
        return bucket.reserve(now)

    async def acquire(self, channel: str, destination: str) -> float:
        delay = self.reserve(channel, destination)
        if delay > 0:
            await self._sleep(delay)
        return delay
