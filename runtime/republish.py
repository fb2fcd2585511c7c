"""Subscription writes whose publication failed, sent again in the background.

The Redis subscription store writes Redis first, then the compacted `subscriptions` topic; a write whose
publish failed (broker down, timeout) stays marked as pending in Redis, and stream workers do not match
against it until it is published (subscriptions/redis.py). The process that writes subscriptions,
`vigie api`, runs `republish_forever` next to its server: once at start, then every
`republish_interval` seconds, until it is cancelled at shutdown. Cancelling mid-round is safe: a mark is
cleared only after the broker acknowledged the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

LOGGED_IDS = 20


@runtime_checkable
class Republishable(Protocol):
    """A subscription store that tracks the writes it could not publish (RedisSubscriptionStore)."""

    @property
    def publishing(self) -> bool: ...

    async def republish_pending(self) -> list[str]: ...

    async def republish_all(self) -> int: ...


def republisher(store: object) -> Republishable | None:
    """`store` when it publishes its writes and can send the failed ones again, else None."""
    return store if isinstance(store, Republishable) and store.publishing else None


async def republish_once(store: Republishable) -> list[str]:
    """Send the pending writes; the ids sent. A failure (broker or Redis down) is logged, the marks stay."""
    try:
        sent = await store.republish_pending()
    except Exception as exc:  # any failure leaves the writes pending for the next round; logged, never fatal
        log.warning("subscription writes still pending: republishing failed (%s)", exc)
        return []
    if sent:
        shown = ", ".join(sent[:LOGGED_IDS]) + (", …" if len(sent) > LOGGED_IDS else "")
        log.warning("published %d pending subscription write(s): %s", len(sent), shown,
                    extra={"subscription_ids": sent[:LOGGED_IDS], "republished": len(sent)})
    return sent


async def republish_forever(store: Republishable, *, interval_s: float) -> None:
    """`republish_once` now and then every `interval_s` seconds, until cancelled."""
    while True:
        await republish_once(store)
        await asyncio.sleep(interval_s)


def republishing(store: Republishable, *, interval_s: float) -> Callable[[object], AsyncIterator[None]]:
    """An aiohttp cleanup context: the periodic republish runs while the application does."""

    async def context(_: object) -> AsyncIterator[None]:
        task = asyncio.create_task(republish_forever(store, interval_s=interval_s), name="republish-subscriptions")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context
