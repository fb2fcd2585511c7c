"""Delivery policy as data: backoff, Retry-After, exhaustion, and the token buckets."""

from __future__ import annotations

import pytest

from notifiers.ratelimit import DEFAULT_RATES, Rate, RateLimiter, TokenBucket
from notifiers.worker import RetryPolicy, parse_schedule

POLICY = RetryPolicy()


@pytest.mark.parametrize(("attempt", "retry_after", "spread", "delay"), [
    (1, None, 0.5, 1.0),
    (2, None, 0.5, 2.0),
    (3, None, 0.5, 4.0),
    (7, None, 0.5, 64.0),
    (13, None, 0.5, 3600.0),  # 4096 capped
    (5000, None, 0.5, 3600.0),  # no overflow
    (1, None, 0.0, 0.9),  # -10 % jitter
    (1, None, 1.0, 1.1),  # +10 %
    (13, None, 1.0, 3600.0),  # jitter never exceeds the cap
    (3, 30.0, 0.0, 30.0),  # Retry-After wins, without jitter
    (3, 0.0, 0.5, 0.0),
    (3, -5.0, 0.5, 0.0),
    (3, 86_400.0, 0.5, 3600.0),  # a destination cannot park a delivery past the cap
])
def test_next_delay(attempt: int, retry_after: float | None, spread: float, delay: float) -> None:
    assert POLICY.next_delay(attempt, retry_after, spread=spread) == pytest.approx(delay)


def test_policy_is_data() -> None:
    policy = RetryPolicy(max_attempts=3, base=10.0, factor=3.0, max_delay=60.0, jitter=0.0)
    assert [policy.next_delay(n) for n in (1, 2, 3, 4)] == [10.0, 30.0, 60.0, 60.0]
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert POLICY.max_attempts == 8


def test_bucket_lets_a_burst_through_then_paces() -> None:
    bucket = TokenBucket.full(Rate(2.0, burst=3.0), now=100.0)
    assert [bucket.reserve(100.0) for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert bucket.reserve(102.0) == 0.0  # refilled: -2 + 4 tokens, capped at the burst
    assert not bucket.idle(102.0)
    assert bucket.idle(103.5)


class FakeTime:
    """A monotonic clock that `sleep` advances: waits are recorded, never slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_limiter_delays_per_destination_and_never_drops() -> None:
    time = FakeTime()
    limiter = RateLimiter(DEFAULT_RATES, monotonic=time, sleep=time.sleep)
    waits = [await limiter.acquire("slack", "slack://C0AAA") for _ in range(3)]
    assert waits == [0.0, 1.0, 1.0]
    assert await limiter.acquire("slack", "slack://C0BBB") == 0.0  # another channel has its own bucket
    assert [await limiter.acquire("webhook", "webhook+https://a.example/") for _ in range(20)] == [0.0] * 20
    assert await limiter.acquire("webhook", "webhook+https://a.example/") == pytest.approx(0.05)
    assert await limiter.acquire("console", "console://") == 0.0  # no rate: no wait
    assert time.slept == [1.0, 1.0, pytest.approx(0.05)]


def test_limiter_forgets_idle_buckets_beyond_its_bound() -> None:
    time = FakeTime()
    limiter = RateLimiter({"slack": Rate(1.0)}, monotonic=time, max_buckets=2)
    limiter.reserve("slack", "a")
    limiter.reserve("slack", "b")
    assert len(limiter) == 2
    time.now += 5
    limiter.reserve("slack", "c")
    assert len(limiter) == 1  # a and b were full again: forgotten
    assert limiter.reserve("slack", "c") == 1.0


@pytest.mark.parametrize(("per_second", "burst"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.5)])
def test_rates_must_make_sense(per_second: float, burst: float) -> None:
    with pytest.raises(ValueError, match="a rate needs"):
        Rate(per_second, burst)


def test_the_default_schedule_is_svixs() -> None:
    policy = RetryPolicy.from_schedule(jitter=0.0)
    assert [policy.next_delay(n) for n in range(1, 8)] == [5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0, 36_000.0]
    assert [policy.exhausted(n) for n in (7, 8)] == [False, True]
    assert policy.next_delay(2, retry_after=60.0) == 60.0  # Retry-After wins
    assert policy.next_delay(2, retry_after=10 * 86_400.0) == 36_000.0  # capped at the longest delay


@pytest.mark.parametrize(("text", "schedule"), [
    ("0,5s,5m,30m,2h,5h,10h,10h", (0.0, 5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0, 36_000.0)),
    ("0, 100ms, 1", (0.0, 0.1, 1.0)),
    ("1d", (86_400.0,)),
])
def test_schedules_are_read(text: str, schedule: tuple[float, ...]) -> None:
    assert parse_schedule(text) == pytest.approx(schedule)


@pytest.mark.parametrize("text", ["", "5x", "-1", "soon"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="delay"):
        parse_schedule(text)
