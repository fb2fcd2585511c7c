"""Where the dead letters are, by runtime: the embedded SQLite outbox, or the distributed dead-letter topics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.ports import DeadLetters
from notifiers.outbox_sqlite import SqliteOutbox
from runtime.settings import Settings
from runtime.wiring import REDIS
from streams.sqlite import Database

CHANNELS = ("webhook", "slack", "console", "tg")


@asynccontextmanager
async def dead_letters(settings: Settings) -> AsyncIterator[DeadLetters]:
    """The dead letters of the deployment `settings` describe, open for the duration of the block."""
    if settings.bus.startswith("kafka://") and settings.subscription_store.startswith(REDIS):
        from notifiers.dead_letters import KafkaDeadLetters  # noqa: PLC0415 - optional extra
        from streams.bus.kafka import bootstrap_of  # noqa: PLC0415 - optional extra

        kafka = KafkaDeadLetters(bootstrap_of(settings.bus), redis_url=settings.subscription_store,
                                 channels=CHANNELS, prefix=settings.topic_prefix, namespace=settings.namespace)
        try:
            yield kafka
        finally:
            await kafka.aclose()
        return
    db = await Database(settings.state).open()
    try:
        yield SqliteOutbox(db)
    finally:
        await db.close()
