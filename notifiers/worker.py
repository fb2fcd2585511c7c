"""The outbox drainer: send what is due, schedule retries, dead-letter what will never work.

Delivery policy is data (`RetryPolicy`). Order is kept per subscription: its deliveries go one
after another in outbox order, and after a failure the rest wait for a later round (the outbox's
`pending` holds back what follows an undelivered, not-yet-due delivery of the same subscription).
Different subscriptions are served in parallel, at most `concurrency` at a time, each destination
paced by a token bucket (`ratelimit.py`).

What was delivered is marked in one write when the batch has finished (`Outbox.delivered_many`), each delivery
with the moment its destination accepted it; failures, retries, holds and drops are written as they happen. A
crash before that write sends the batch's delivered ones again at restart: delivery is at least once, and
receivers recognise a repeat by its idempotency key.

A channel that merges (Slack) is queued by destination instead (`merging.py`, shared with the Kafka notifier):
what is due for one Slack channel goes out as one message per token (up to the limit each), every delivery
marked with its own key, so a burst never exceeds the channel's rate and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from core.errors import DeliveryError
from core.model import Delivery, Subscription
from core.ports import Outbox
from core.schedule import release_at
from notifiers import mask
from notifiers.failing import EndpointWatch
from notifiers.merging import Sender, chunk_size, chunks, queue_key, send_chunk
from notifiers.ratelimit import RateLimiter

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_RETRY_SCHEDULE", "DrainResult", "OutboxWorker", "Outcome", "Pending", "RetryPolicy", "Sender",
           "parse_schedule"]

Outcome = Literal["delivered", "retried", "dead", "dropped", "held"]
Observe = Callable[[Delivery, str], None]  # told each delivery's outcome (runtime's metrics)
Pending = tuple[Delivery, int]
Sent = list[tuple[str, datetime]]  # the keys delivered so far in this drain, with when


DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18_000.0, 36_000.0, 36_000.0)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_schedule(text: str) -> tuple[float, ...]:
    """"0,5s,5m,2h" → seconds before each attempt; ValueError naming a bad entry."""
    delays = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        number = part.rstrip("smhd") if not part.endswith("ms") else part[:-2]
        unit = part[len(number):] or "s"
        try:
            delays.append(float(number) * _UNITS[unit])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not a delay: {part!r} (try 5s, 5m, 2h)") from exc
    if not delays or any(d < 0 for d in delays):
        raise ValueError(f"a retry schedule needs at least one delay, none negative: {text!r}")
    return tuple(delays)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, or a `schedule` (`from_schedule`: the seconds to wait before each
    attempt, the first one immediate, like Svix's); a destination's `Retry-After` wins when it gives one."""

    max_attempts: int = 8
    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.1
    schedule: tuple[float, ...] = ()

    @classmethod
    def from_schedule(cls, schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE, *, jitter: float = 0.1) -> RetryPolicy:
        """len(schedule) attempts; after failed attempt n, wait schedule[n] seconds (±jitter)."""
        if not schedule:
            raise ValueError("a retry schedule needs at least one delay")
        return cls(max_attempts=len(schedule), max_delay=max(schedule), jitter=jitter, schedule=tuple(schedule))

    def next_delay(self, attempt: int, retry_after: float | None = None, *, spread: float = 0.5) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        `spread` in [0, 1] picks the point in the ±jitter band (0.5: exactly on the curve); the
        worker draws it at random so retries of many deliveries do not arrive in lockstep.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        if self.schedule:
            raw = self.schedule[min(max(attempt, 1), len(self.schedule) - 1)]
            return min(raw * (1.0 + self.jitter * (2.0 * spread - 1.0)), self.max_delay)
        try:
            raw = self.base * self.factor ** max(0, attempt - 1)
        except OverflowError:
            raw = self.max_delay
        return min(min(raw, self.max_delay) * (1.0 + self.jitter * (2.0 * spread - 1.0)), self.max_delay)

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


@dataclass(frozen=True, slots=True)
class DrainResult:
    delivered: int
    retried: int
    dead: int
    dropped: int = 0  # their subscription was deleted, paused or disabled after they matched
    held: int = 0  # not yet: the subscription's digest or quiet hours (core/schedule.py)


class Subscriptions(Protocol):
    """The subscription store, asked for each subscription's current status before its deliveries go out."""

    async def get(self, subscription_id: str) -> Subscription | None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _context(delivery: Delivery) -> dict[str, Any]:
    return {"change_id": delivery.change.id, "subscription_id": delivery.subscription.id,
            "channel": delivery.subscription.channel, "delivery_key": delivery.key}


class OutboxWorker:
    def __init__(self, outbox: Outbox, channels: Sender, policy: RetryPolicy | None = None,
                 clock: Callable[[], datetime] = _utcnow, *, concurrency: int = 8,
                 limiter: RateLimiter | None = None, rng: Callable[[], float] = random.random,
                 subscriptions: Subscriptions | None = None, endpoints: EndpointWatch | None = None,
                 observe: Observe | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._outbox = outbox
        self._channels = channels
        self._policy = RetryPolicy() if policy is None else policy
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._limiter = RateLimiter() if limiter is None else limiter
        self._rng = rng
        self._subscriptions = subscriptions
        self._endpoints = endpoints  # failing for too long → disabled (notifiers/failing.py)
        self._observe = observe

    async def drain(self, limit: int = 100) -> DrainResult:
        """Try every delivery due now (up to `limit`) once; what failed is rescheduled or dead-lettered, what went
        out is marked delivered in one write once every queue has finished."""
        tally: Counter[Outcome] = Counter()
        queues: dict[str, list[Pending]] = {}
        now = self._clock()
        for delivery, attempts in await self._due(await self._live(await self._outbox.pending(limit, now), tally),
                                                  now, tally):
            queues.setdefault(queue_key(self._channels, delivery), []).append((delivery, attempts))
        sent: Sent = []
        try:
            results = await asyncio.gather(*(self._run_queue(queue, tally, sent) for queue in queues.values()),
                                           return_exceptions=True)
        finally:  # also when the drain is cancelled: what went out is not sent again
            if sent:
                await self._outbox.delivered_many(sent)
        for result in results:  # every queue has finished; now an outbox failure may surface
            if isinstance(result, BaseException):
                raise result
        return DrainResult(tally["delivered"], tally["retried"], tally["dead"], tally["dropped"], tally["held"])

    async def _due(self, pending: list[Pending], now: datetime, tally: Counter[Outcome]) -> list[Pending]:
        """The deliveries to send now; those a digest or quiet hours hold are put back until their time."""
        due: list[Pending] = []
        for delivery, attempts in pending:
            until = release_at(delivery.subscription, delivery.change, now)
            if until is None:
                due.append((delivery, attempts))
                continue
            await self._outbox.hold(delivery.key, until)
            tally["held"] += 1
            log.debug("delivery %s held until %s", delivery.key, until.isoformat(), extra=_context(delivery))
        return due

    async def _live(self, pending: list[Pending], tally: Counter[Outcome]) -> list[Pending]:
        """The deliveries whose subscription is still active, with it as it is now (the store's); the others are
        dropped: deleted, paused or disabled since they matched, nothing more goes out to them."""
        if self._subscriptions is None:
            return pending
        current = {sid: await self._subscriptions.get(sid) for sid in {d.subscription.id for d, _ in pending}}
        live: list[Pending] = []
        for delivery, attempts in pending:
            subscription = current[delivery.subscription.id]
            if subscription is not None and subscription.active:
                live.append((Delivery(delivery.key, delivery.change, subscription), attempts))
                continue
            reason = _inactive(subscription)
            await self._outbox.dropped(delivery.key, reason)
            tally["dropped"] += 1
            log.info("%s: delivery %s dropped", reason, delivery.key, extra=_context(delivery))
        return live

    async def _run_queue(self, queue: list[Pending], tally: Counter[Outcome], sent: Sent) -> None:
        size = chunk_size(self._channels, queue[0][0].subscription)
        async with self._slots:
            for chunk in chunks(queue, size):
                outcomes = [await self._deliver(*chunk[0])] if size == 1 else await self._deliver_merged(chunk)
                at = self._clock()
                sent.extend((delivery.key, at) for (delivery, _), outcome in zip(chunk, outcomes, strict=True)
                            if outcome == "delivered")
                tally.update(outcomes)
                if self._observe is not None:
                    for (delivery, _), outcome in zip(chunk, outcomes, strict=True):
                        self._observe(delivery, outcome)
                if any(outcome != "delivered" for outcome in outcomes):
                    return

    async def _deliver_merged(self, chunk: Sequence[Pending]) -> list[Outcome]:
        """One message for a destination's deliveries; each then has its own outcome."""
        first = chunk[0][0].subscription
        await self._limiter.acquire(first.channel, first.destination)
        try:
            await send_chunk(self._channels, [delivery for delivery, _ in chunk])
        except Exception as exc:  # DeliveryError says what to do; anything else is retried, with a traceback
            error = _as_delivery_error(exc, chunk[0][0])
            return [await self._failed(delivery, attempts + 1, error) for delivery, attempts in chunk]
        await self._succeeded(first.destination)
        log.info("delivered %d merged alerts to %s", len(chunk), mask(first.destination),
                 extra={"channel": first.channel, "subscription_id": first.id})
        return ["delivered"] * len(chunk)

    async def _deliver(self, delivery: Delivery, attempts: int) -> Outcome:
        subscription = delivery.subscription
        await self._limiter.acquire(subscription.channel, subscription.destination)
        try:
            await self._channels.send(delivery)
        except Exception as exc:  # DeliveryError says what to do; anything else is retried, with a traceback
            error = _as_delivery_error(exc, delivery)
            return await self._failed(delivery, attempts + 1, error)
        await self._succeeded(subscription.destination)
        log.info("delivered %s to %s", delivery.key, mask(subscription.destination), extra=_context(delivery))
        return "delivered"

    async def _succeeded(self, destination: str) -> None:
        if self._endpoints is not None:
            await self._endpoints.succeeded((destination,))

    async def _failed(self, delivery: Delivery, attempt: int, error: DeliveryError) -> Outcome:
        reason, where = str(error), mask(delivery.subscription.destination)
        if self._endpoints is not None:
            await self._endpoints.failed(delivery.subscription.destination, self._clock(), reason)
        if not error.retriable or self._policy.exhausted(attempt):
            await self._outbox.failed(delivery.key, attempt, reason, None)
            log.warning("dead letter %s to %s after %d attempt(s): %s", delivery.key, where, attempt, reason,
                        extra=_context(delivery))
            return "dead"
        delay = self._policy.next_delay(attempt, error.retry_after, spread=self._rng())
        await self._outbox.failed(delivery.key, attempt, reason, self._clock() + timedelta(seconds=delay))
        log.info("attempt %d of %s to %s failed, retry in %.1fs: %s", attempt, delivery.key, where, delay, reason,
                 extra=_context(delivery))
        return "retried"


def _inactive(subscription: Subscription | None) -> str:
    if subscription is None:
        return "subscription deleted"
    return "subscription paused" if subscription.paused else f"subscription disabled: {subscription.disabled_reason}"


def _as_delivery_error(exc: Exception, delivery: Delivery) -> DeliveryError:
    if isinstance(exc, DeliveryError):
        return exc
    log.error("unexpected error delivering %s to %s", delivery.key, mask(delivery.subscription.destination),
              exc_info=exc, extra=_context(delivery))
    return DeliveryError(f"{type(exc).__name__}: {exc}", retriable=True)
