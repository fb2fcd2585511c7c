"""Picks adapters by URL scheme: the only place that knows which store backs which port.

Redis and Kafka adapters are imported only when their URL is configured, so the embedded
runtime runs without the `redis` and `kafka` extras installed.
"""

from __future__ import annotations

from datetime import timedelta

from core.ports import ChangeLog, CurrentView, SubscriptionStore
from core.profiles import PROFILES
from core.topology import Topics
from notifiers.ssrf import NetGuard, NetPolicy
from notifiers.worker import RetryPolicy
from runtime.settings import Settings
from streams.changelog_sqlite import SqliteChangeLog
from streams.view_sqlite import SqliteCurrentView
from subscriptions.keys import KeyStore, SqliteKeyStore
from subscriptions.sqlite import SqliteSubscriptionStore

REDIS = ("redis://", "rediss://")


def subscription_store(settings: Settings) -> SubscriptionStore:
    """SQLite for the embedded runtime; Redis (publishing to the compacted topic on Kafka) otherwise.

    The Redis keys live under `settings.namespace`, the topic is `<topic_prefix>subscriptions`: those the
    stream workers and notifiers of the same deployment read.
    """
    url = settings.subscription_store
    if not url.startswith(REDIS):
        return SqliteSubscriptionStore(url)
    from subscriptions.redis import RedisSubscriptionStore  # noqa: PLC0415 - optional extra

    publisher = None
    if settings.bus.startswith("kafka://"):
        from streams.bus.kafka import bootstrap_of, ensure_topics  # noqa: PLC0415 - optional extra
        from subscriptions.publisher import KafkaSubscriptionPublisher  # noqa: PLC0415 - optional extra

        bootstrap = bootstrap_of(settings.bus)
        publisher = KafkaSubscriptionPublisher(bootstrap, topic=Topics(settings.topic_prefix).subscriptions,
                                               partitions=settings.partitions,
                                               ensure=lambda spec: ensure_topics(bootstrap, [spec]))
    return RedisSubscriptionStore(url, publisher=publisher, namespace=settings.namespace)


def key_store(settings: Settings) -> KeyStore:
    """Tenants' API keys, next to the subscriptions: in their SQLite file, or in their Redis."""
    url = settings.subscription_store
    if not url.startswith(REDIS):
        return SqliteKeyStore(url)
    from subscriptions.redis_keys import RedisKeyStore  # noqa: PLC0415 - optional extra

    return RedisKeyStore(url, namespace=settings.namespace)


async def current_views(settings: Settings) -> dict[str, CurrentView]:
    """One current-state view per known dataset, where the runtime keeps them."""
    url = settings.subscription_store
    if url.startswith(REDIS):
        from streams.view_redis import RedisCurrentView  # noqa: PLC0415 - optional extra

        return {name: RedisCurrentView(url, dataset=name, namespace=settings.namespace) for name in PROFILES}
    return {name: await SqliteCurrentView.connect(settings.state, dataset=name) for name in PROFILES}


def change_log(settings: Settings) -> ChangeLog:
    """The stored change log of the catch-up feed and previews: the state file's `changes` table, or the Redis
    stream the stream workers' view updater appends to."""
    url = settings.subscription_store
    if not url.startswith(REDIS):
        return SqliteChangeLog(settings.state)
    from streams.changelog_redis import RedisChangeLog  # noqa: PLC0415 - optional extra

    return RedisChangeLog(url, namespace=settings.namespace, retention=timedelta(seconds=settings.feed_retention))


def webhook_guard(settings: Settings) -> NetGuard:
    """The outbound guard of partner URLs: public addresses only, plus `webhook_allow`."""
    return NetGuard(NetPolicy.allowing(settings.webhook_allow), connect_timeout=settings.webhook_connect_timeout,
                    read_timeout=settings.http_timeout)


def retry_policy(settings: Settings) -> RetryPolicy:
    """`retry_schedule`: one attempt per delay; when `max_attempts` is set too, the schedule is cut to it (or padded
    with its last delay)."""
    schedule, attempts = settings.retry_schedule, settings.max_attempts
    if "max_attempts" not in settings.model_fields_set:
        return RetryPolicy.from_schedule(schedule)
    return RetryPolicy.from_schedule((*schedule, *(schedule[-1:] * attempts))[:attempts])
