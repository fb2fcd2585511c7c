"""Prometheus metrics, served at `/metrics` (with `/healthz`) by `vigie run` and every distributed role when
`VIGIE_METRICS_PORT` is set; bound to `VIGIE_METRICS_HOST` (127.0.0.1 by default). docs/operations.md lists them.

The series are fed from outcomes the runtimes already have: a poll's Outcome (embedded) or Published (producer),
and each delivery's outcome from the outbox worker or the Kafka notifier (`notifiers.worker.Observe`).
Kafka consumer lag is sampled every LAG_EVERY_S seconds from the consumers' own state (`sample_lag`), never asked
of the broker when Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from core.model import Delivery
from core.urls import mask_url

if TYPE_CHECKING:  # the producer role's, with the kafka extra; vigie run does without
    from producers.kafka_publisher import Published

log = logging.getLogger(__name__)
LAG_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600, 7 * 24 * 3600)
POLL_OUTCOMES = ("ok", "unchanged", "incomplete", "failed")
LAG_EVERY_S = 5.0
ConsumerLag = Mapping[tuple[str, str, int], int]  # (group, topic, partition) → records behind


class Metrics:
    """Every series Vigie exports, in one registry (one per process; tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        ProcessCollector(registry=r)  # CPU, memory, open files of the process
        PlatformCollector(registry=r)
        self.polls = Counter("vigie_polls", "Source polls, by source and outcome (ok, unchanged, incomplete, failed)",
                             ["source", "outcome"], registry=r)
        self.rows = Counter("vigie_rows", "Rows read from sources", ["dataset"], registry=r)
        self.quarantined = Counter("vigie_quarantined_rows", "Rows that could not be read (quarantined)",
                                   ["dataset"], registry=r)
        self.changes = Counter("vigie_changes", "Changes detected, by operation (created, updated, removed)", ["op"],
                               registry=r)
        self.kinds = Counter("vigie_change_kinds", "Changes detected, by kind (new_inspection, downgrade, upgrade, "
                             "updated, removed, aged_out…)", ["kind"], registry=r)
        self.deliveries = Counter("vigie_deliveries", "Delivery attempts, by channel and outcome (delivered, retried,"
                                  " dead, dropped, held)", ["channel", "outcome"], registry=r)
        self.retries = Counter("vigie_delivery_retries", "Failed deliveries scheduled for another attempt",
                               ["channel"], registry=r)
        self.dead_letters = Counter("vigie_dead_letters", "Deliveries given up (dead-lettered)", ["channel"],
                                    registry=r)
        self.lag = Histogram("vigie_delivery_lag_seconds", "From a change's detection (its CloudEvent time) to its "
                             "delivery", ["channel"], buckets=LAG_BUCKETS, registry=r)
        self.last_poll = Gauge("vigie_last_poll_timestamp_seconds", "When a source was last polled", ["source"],
                               registry=r)
        self.consumer_lag = Gauge("vigie_kafka_consumer_lag", "Records behind the end of each assigned partition, by "
                                  "consumer group (stream workers: not processed; notifiers: not fetched)",
                                  ["group", "topic", "partition"], registry=r)
        self._lagging: set[tuple[str, str, str]] = set()

    def lagged(self, lag: ConsumerLag) -> None:
        """The current lag of every assigned partition; partitions no longer assigned lose their series."""
        now = {(group, topic, str(partition)): behind for (group, topic, partition), behind in lag.items()}
        for gone in self._lagging - now.keys():
            self.consumer_lag.remove(*gone)
        for labels, behind in now.items():
            self.consumer_lag.labels(*labels).set(behind)
        self._lagging = set(now)

    def polled(self, source: str, dataset: str, outcome: str, *, rows: int, quarantined: int,
               ops: Mapping[str, int] | None = None, kinds: Mapping[str, int] | None = None,
               at: datetime | None = None) -> None:
        """One poll: its outcome (POLL_OUTCOMES), rows read, rows quarantined, changes by operation and kind."""
        shown = mask_url(source)
        self.polls.labels(shown, outcome).inc()
        self.rows.labels(dataset).inc(rows)
        self.quarantined.labels(dataset).inc(quarantined)
        for op, count in (ops or {}).items():
            self.changes.labels(op).inc(count)
        for kind, count in (kinds or {}).items():
            self.kinds.labels(kind).inc(count)
        self.last_poll.labels(shown).set((at or datetime.now(UTC)).timestamp())

    def delivered(self, delivery: Delivery, outcome: str, now: datetime | None = None) -> None:
        """One delivery's outcome (`notifiers.worker.Observe`); the lag when it was delivered."""
        channel = delivery.subscription.channel
        self.deliveries.labels(channel, outcome).inc()
        if outcome == "retried":
            self.retries.labels(channel).inc()
        elif outcome == "dead":
            self.dead_letters.labels(channel).inc()
        elif outcome == "delivered":
            lag = ((now or datetime.now(UTC)) - delivery.change.detected_at).total_seconds()
            self.lag.labels(channel).observe(max(0.0, lag))


async def sample_lag(metrics: Metrics, read: Callable[[], Awaitable[ConsumerLag]], stop: asyncio.Event,
                     every: float = LAG_EVERY_S) -> None:
    """Until `stop`: the consumer lag `read()` gives, into the gauge, every `every` seconds."""
    while not stop.is_set():
        try:
            metrics.lagged(await read())
        except Exception:  # a sample missed is no reason to stop the role
            log.warning("consumer lag not sampled", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def count_published(metrics: Metrics, dataset: str, published: Published) -> None:
    """One poll of the producer role."""
    state = poll_outcome(problem=published.problem, complete=published.complete, unchanged=published.unchanged)
    metrics.polled(published.source, dataset, state, rows=published.records, quarantined=published.quarantined)


def poll_outcome(*, problem: str | None, complete: bool, unchanged: bool) -> str:
    if problem:
        return "failed"
    if unchanged:
        return "unchanged"
    return "ok" if complete else "incomplete"


Health = Callable[[], Mapping[str, Any]]


def app(metrics: Metrics, health: Health | None = None) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        state = dict(health()) if health else {"ok": True}
        return web.json_response(state, status=200 if state.get("ok", True) else 503)

    application = web.Application()
    application.router.add_get("/metrics", scrape)
    application.router.add_get("/healthz", healthz)
    return application


@asynccontextmanager
async def serving(metrics: Metrics, host: str, port: int | None,
                  health: Health | None = None) -> AsyncIterator[int | None]:
    """Serve `/metrics` and `/healthz` on host:port while the block runs (port 0: any free port); the port bound,
    None when `port` is None (metrics off)."""
    if port is None:
        yield None
        return
    runner = web.AppRunner(app(metrics, health), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("metrics on http://%s:%d/metrics", host, bound)
    try:
        yield int(bound)
    finally:
        await runner.cleanup()
