"""`vigie sources` and `vigie sources release` on the distributed runtime: source health and dataset events in
Redis; a release publishes the held changes to `changes`, where the stream workers match them as any other."""

from __future__ import annotations

from datetime import UTC, datetime

from producers.kafka_publisher import RedisSourceState, SourceStatus
from runtime.distributed import DistributedSettings
from runtime.settings import Settings
from streams.bus.kafka import KafkaBus, change_message
from streams.held_redis import RedisHeldEvents
from streams.held_sqlite import HeldEvent


def _distributed(settings: Settings) -> DistributedSettings:
    return DistributedSettings(**settings.model_dump())


async def distributed_state(settings: Settings) -> tuple[list[SourceStatus], list[HeldEvent]]:
    s = _distributed(settings)
    sources, held = RedisSourceState(s.redis_url, namespace=s.namespace), RedisHeldEvents(s.redis_url,
                                                                                          namespace=s.namespace)
    try:
        return await sources.all(), await held.events()
    finally:
        await sources.aclose()
        await held.aclose()


async def release_distributed(settings: Settings, event: HeldEvent) -> int:
    """Publish the event's held changes to `changes` (acknowledged), then mark it released; how many."""
    s = _distributed(settings)
    held = RedisHeldEvents(s.redis_url, namespace=s.namespace)
    bus = KafkaBus(s.bootstrap, topics=s.topics, client_id=f"{s.app_id}-release")
    try:
        changes = await held.held(event.id)
        await bus.start()
        await bus.send_all([change_message(s.topics, c) for c in changes])
        await held.mark_released(event, datetime.now(UTC))
        return len(changes)
    finally:
        await bus.stop()
        await held.aclose()


async def distributed_events(settings: Settings) -> list[HeldEvent]:
    s = _distributed(settings)
    held = RedisHeldEvents(s.redis_url, namespace=s.namespace)
    try:
        return await held.events()
    finally:
        await held.aclose()
