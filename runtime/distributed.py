"""The distributed runtime: Vigie's roles on Apache Kafka and Redis, wired here and started from the CLI.

    vigie producer [--once]             poll sources → records.<dataset>            (producers/kafka_publisher.py)
    vigie streams worker                diff + match agents (faust-streaming)        (streams/faust_app.py)
    vigie notifier --channel webhook    deliveries.<channel> → Slack / webhooks / …  (notifiers/kafka_worker.py)
    vigie bot                           the chatbots on the Redis store (published) and view      (runtime/telegram.py)
    vigie healthcheck --role streams    exit 0 when the broker, Redis and the role's heartbeat answer, and the
                                        role reports no problem of its own (runtime/health.py)

Selected by `VIGIE_BUS=kafka://host:9092` and `VIGIE_STORE=redis://host:6379/0`; `memory://` and `sqlite:///…`
keep the embedded runtime (`vigie run`). Settings beyond the embedded ones (all `VIGIE_*`):

    topic_prefix     ""        prefix of every topic name (several deployments on one cluster)
    partitions       4         partitions of the topics Vigie creates
    app_id           "vigie"   faust app id = the stream workers' consumer group; notifier groups derive from it
    streams_store    auto      `rocksdb://` when rocksdict is installed, else `memory://`
    data_dir         "vigie-data"  faust's table files and the roles' heartbeat files
    namespace        "vigie"   prefix of every Redis key
    claim_ttl        120       seconds a notifier's claim on a delivery lives (must exceed http_timeout)
    webhook_rate     20        webhook deliveries per second per URL (the guard's policy, shared in Redis)
    session_timeout  10        seconds a stream worker or notifier may go unheard before its group rebalances
    datasets         []        datasets the diff agent reads (default: those of `sources`)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import aiohttp
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from core import topology
from core.index import warm_up
from core.storms import MassRule
from core.topology import Topics, TopicSpec
from notifiers import PLUGINS, Channels
from notifiers.failing import EndpointWatch, RedisFailures
from notifiers.guard import RATE_POLICY, DeliveryGuard, Limit
from notifiers.held import HeldDeliveries
from notifiers.kafka_worker import KafkaNotifier, NotifierConfig
from notifiers.ratelimit import Rate
from producers import adapter_for, open_source
from producers.digests import RedisDigests
from producers.kafka_publisher import KafkaPublisher, Published, RedisSourceState, SnapshotProducer
from runtime.health import HEARTBEAT_S, Problems, health, watch_store
from runtime.incidents import ProducerIncidents, poll_source
from runtime.lag import agents_lag, notifier_lag
from runtime.logs import configure
from runtime.metrics import Metrics, count_published, sample_lag, serving
from runtime.settings import Settings
from runtime.telegram import disabler, run_bot, telegram_options
from runtime.wiring import retry_policy, subscription_store, webhook_guard
from streams.bus.kafka import KafkaBus, bootstrap_of, ensure_topics
from streams.changelog_redis import RedisChangeLog
from streams.faust_app import Streams, StreamsConfig
from streams.held_redis import RedisHeldEvents
from streams.kafka_gate import Gate
from streams.kafka_view import ViewUpdater
from streams.view_redis import RedisCurrentView
from subscriptions.redis import RedisSubscriptionStore

ROLES = ("producer", "streams", "notifier", "api", "bot")
CHANNELS = ("webhook", "slack", "console", "tg")

log = logging.getLogger(__name__)


class DistributedSettings(Settings):
    app_id: str = "vigie"
    streams_store: str | None = None
    data_dir: str = "vigie-data"
    claim_ttl: float = Field(default=120.0, gt=0)
    webhook_rate: float = Field(default=20.0, gt=0)
    session_timeout: float = Field(default=10.0, ge=1)
    datasets: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("datasets", mode="before")
    @classmethod
    def _split_datasets(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @property
    def bootstrap(self) -> str:
        return bootstrap_of(self.bus)

    @property
    def redis_url(self) -> str:
        if not self.store or not self.store.startswith(("redis://", "rediss://")):
            raise ValueError(f"the distributed runtime needs VIGIE_STORE=redis://…, got {self.store!r}")
        return self.store

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def all_datasets(self) -> list[str]:
        return sorted(set(self.datasets) | {adapter_for(url).dataset for url in self.sources})

    def heartbeat(self, role: str) -> Path:
        return Path(self.data_dir) / f"{role}.alive"

    def problems(self, role: str) -> Path:
        return Path(self.data_dir) / f"{role}.problems"


def is_distributed(settings: Settings) -> bool:
    return settings.bus.startswith("kafka://")


def topic_specs(s: DistributedSettings) -> list[TopicSpec]:
    """Every topic the roles of this deployment use (core/topology.py's table), with its dead-letter topic."""
    return topology.topic_specs(s.topics, datasets=s.all_datasets, channels=CHANNELS, partitions=s.partitions)


def settings_from(args: argparse.Namespace) -> DistributedSettings:
    overrides: dict[str, Any] = {}
    if getattr(args, "source", None):
        overrides["sources"] = args.source
    settings = DistributedSettings(**overrides)
    configure(settings.log_level, settings.log_format)
    if not is_distributed(settings):
        raise SystemExit(f"vigie {args.command}: set VIGIE_BUS=kafka://host:9092 (got {settings.bus!r}); "
                         "the embedded runtime is `vigie run`")
    return settings


async def _heartbeat(path: Path, stop: asyncio.Event) -> None:
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    while not stop.is_set():
        await asyncio.to_thread(path.write_text, f"{time.time():.3f}\n", encoding="utf-8")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_S)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# -- producer --------------------------------------------------------------------------------------------


async def run_producer(s: DistributedSettings, *, once: bool, full: bool = False) -> list[Published]:
    await ensure_topics(s.bootstrap, topic_specs(s))
    publisher = KafkaPublisher(s.bootstrap, prefix=s.topic_prefix, client_id=f"{s.app_id}-producer")
    state = RedisSourceState(s.redis_url, namespace=s.namespace)
    digests = RedisDigests(s.redis_url, namespace=s.namespace)
    if full:  # the next snapshot of each source goes out whole (the stream workers' tables were reset)
        for url in s.sources:
            await digests.forget(url)
    producer = SnapshotProducer(publisher, state, min_ratio=s.min_snapshot_ratio, baseline_alerts=s.baseline_alerts,
                                digests=digests)
    bus = KafkaBus(s.bootstrap, topics=s.topics, client_id=f"{s.app_id}-producer-notices")
    incidents = ProducerIncidents.of_settings(state, bus, stale_after=s.stale_after, failing_after=s.failing_after)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.http_timeout)) as session:
        sources = {url: (open_source(url, session=session), adapter_for(url)) for url in s.sources}
        await publisher.start()
        await bus.start()
        try:
            if once:
                return [await poll_source(producer, url, *pair, incidents, at=datetime.now(UTC))
                        for url, pair in sources.items()]
            await _poll_forever(s, producer, sources, incidents)
            return []
        finally:
            await publisher.stop()
            await bus.stop()
            await state.aclose()
            await digests.aclose()
            for source, _ in sources.values():
                await source.aclose()


async def _poll_forever(s: DistributedSettings, producer: SnapshotProducer, sources: dict[str, Any],
                        incidents: ProducerIncidents) -> None:
    stop = _stop_on_signals()
    metrics = Metrics()

    async def loop(url: str, source: Any, adapter: Any) -> None:
        while not stop.is_set():
            published = await poll_source(producer, url, source, adapter, incidents, at=datetime.now(UTC))
            count_published(metrics, adapter.dataset, published)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), s.poll_interval)

    async with serving(metrics, s.metrics_host, s.metrics_port), asyncio.TaskGroup() as tasks:
        tasks.create_task(_heartbeat(s.heartbeat("producer"), stop))
        for url, (source, adapter) in sources.items():
            tasks.create_task(loop(url, source, adapter))


# -- streams ---------------------------------------------------------------------------------------------


def streams_store(s: DistributedSettings) -> str:
    if s.streams_store:
        return s.streams_store
    return "rocksdb://" if importlib.util.find_spec("rocksdict") else "memory://"


async def run_streams(s: DistributedSettings) -> None:
    datasets = s.all_datasets
    if not datasets:
        raise SystemExit("vigie streams worker: no dataset to read; set VIGIE_SOURCES or VIGIE_DATASETS")
    await ensure_topics(s.bootstrap, topic_specs(s))
    await asyncio.to_thread(Path(s.data_dir).mkdir, parents=True, exist_ok=True)
    if await asyncio.to_thread(warm_up):  # the index's kernel, loaded (or compiled) before the first change
        log.info("subscription index: compiled kernel ready")
    store = streams_store(s)
    # faust's memory store drops standby data after every recovery: standbys only pay off with RocksDB
    conf = StreamsConfig(app_id=s.app_id, bootstrap=s.bootstrap, datasets=datasets, store=store,
                         partitions=s.partitions, data_dir=s.data_dir, session_timeout=s.session_timeout,
                         standby_replicas=0 if store.startswith("memory:") else 1)
    bus = KafkaBus(s.bootstrap, topics=s.topics, client_id=f"{s.app_id}-streams")
    views = {d: RedisCurrentView(s.redis_url, dataset=d, namespace=s.namespace) for d in datasets}
    problems = Problems(s.problems("streams"))
    change_log = RedisChangeLog(s.redis_url, namespace=s.namespace, retention=timedelta(seconds=s.feed_retention))
    updater = ViewUpdater(s.bootstrap, s.topics.changes, f"{s.app_id}-view", views,
                          report=problems.reporter("view"), log=change_log)
    subscriptions = RedisSubscriptionStore(s.redis_url, namespace=s.namespace)
    streams = Streams(conf, bus, heartbeat=s.heartbeat("streams"))
    held = RedisHeldEvents(s.redis_url, namespace=s.namespace)
    gate = Gate(bus, held, group=f"{s.app_id}-gate", rule=MassRule(s.mass_change_share, s.mass_change_minimum),
                match=lambda change: streams.feed.index.match(change),  # noqa: PLW0108 - the feed swaps its index
                ready=streams.feed.ready.wait,
                report=problems.reporter("gate"))
    stop, metrics = asyncio.Event(), Metrics()
    tasks = [asyncio.create_task(updater.run(stop)), asyncio.create_task(gate.run(stop)),
             asyncio.create_task(watch_store(subscriptions, lambda: len(streams.feed.index),
                                             problems.reporter("subscriptions"), stop)),
             asyncio.create_task(sample_lag(metrics, agents_lag(streams), stop))]
    try:
        async with serving(metrics, s.metrics_host, s.metrics_port):  # process series, lag; changes: vigie run's
            await streams.run()
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):  # its failure was logged; the worker's own outcome matters here
                await task
        await subscriptions.aclose()
        await held.aclose()
        await change_log.aclose()
        for view in views.values():
            await view.aclose()


# -- notifier --------------------------------------------------------------------------------------------


def guard_policy(s: DistributedSettings) -> dict[str, tuple[Limit, ...]]:
    return {**RATE_POLICY, "webhook": (Limit(Rate(s.webhook_rate, burst=max(1.0, s.webhook_rate))),)}


async def run_notifier(s: DistributedSettings, channel: str) -> None:
    await ensure_topics(s.bootstrap, topic_specs(s))
    conf = NotifierConfig(channel=channel, bootstrap=s.bootstrap, group=f"{s.app_id}-notifier-{channel}",
                          prefix=s.topic_prefix, busy_delay_s=min(s.claim_ttl, 30.0),
                          reclaim_after_s=s.claim_ttl / 2, session_timeout_s=s.session_timeout)
    store = RedisSubscriptionStore(s.redis_url, namespace=s.namespace)
    refusals = subscription_store(s)  # publishes: a disabled subscription stops matching on every stream worker
    guard = DeliveryGuard(s.redis_url, namespace=s.namespace, claim_ttl_s=s.claim_ttl, policy=guard_policy(s))
    stop = _stop_on_signals()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.http_timeout)) as session:
        channels = Channels(slack_token=s.slack_bot_token.get_secret_value() if s.slack_bot_token else None,
                            slack_base_url=s.slack_api_url, console_stream=sys.stdout, timeout=s.http_timeout,
                            session=session, on_refused=disabler(refusals), webhook_guard=webhook_guard(s),
                            **telegram_options(s))
        held = HeldDeliveries(s.redis_url, namespace=s.namespace, channel=channel)  # digests and quiet hours
        failures = RedisFailures(s.redis_url, namespace=s.namespace, channel=channel)
        watch = EndpointWatch(failures, timedelta(seconds=s.disable_after), disabler(refusals))
        metrics = Metrics()
        worker = KafkaNotifier(conf, store, guard, channels, policy=retry_policy(s), held=held, endpoints=watch,
                               observe=metrics.delivered)
        try:
            async with serving(metrics, s.metrics_host, s.metrics_port), asyncio.TaskGroup() as tasks:
                tasks.create_task(_heartbeat(s.heartbeat(f"notifier-{channel}"), stop))
                tasks.create_task(worker.run(stop))
                tasks.create_task(sample_lag(metrics, notifier_lag(worker), stop))
        finally:
            await channels.aclose()
            await guard.aclose()
            await held.aclose()
            await failures.aclose()
            await store.aclose()
            await refusals.aclose()


# -- command line ----------------------------------------------------------------------------------------


def cmd_producer(args: argparse.Namespace) -> int:
    s = settings_from(args)
    if not s.sources:
        sys.stderr.write("vigie producer: no sources configured (VIGIE_SOURCES)\n")
        return 2
    published = asyncio.run(run_producer(s, once=args.once, full=args.full))
    if args.once:
        sys.stdout.write(json.dumps({"sources": [p.to_dict() for p in published]}) + "\n")
    return 0


def cmd_streams_worker(args: argparse.Namespace) -> int:
    asyncio.run(run_streams(settings_from(args)))
    return 0


def cmd_notifier(args: argparse.Namespace) -> int:
    s = settings_from(args)
    asyncio.run(run_notifier(s, args.channel))
    return 0


def cmd_bot(args: argparse.Namespace) -> int:
    s = settings_from(args)

    async def bot() -> None:
        stop = _stop_on_signals()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_heartbeat(s.heartbeat("bot"), stop))
            tasks.create_task(run_bot(s, stop))

    asyncio.run(bot())
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    s = settings_from(args)
    problems = asyncio.run(health(s, args.role, args.channel))
    for problem in problems:
        sys.stderr.write(f"unhealthy: {problem}\n")
    return 1 if problems else 0


def add_parsers(sub: Any) -> None:
    """The distributed roles, as subcommands of `vigie`."""
    producer = sub.add_parser("producer", help="poll sources and publish snapshots to Kafka (distributed)")
    producer.add_argument("--once", action="store_true", help="poll each source once, print a JSON summary, exit")
    producer.add_argument("--source", action="append", help="source URL (repeatable; overrides VIGIE_SOURCES)")
    producer.add_argument("--full", action="store_true",
                          help="send the next snapshot of each source whole, not only what changed (after the stream "
                               "workers' tables were reset)")
    producer.set_defaults(func=cmd_producer)
    streams = sub.add_parser("streams", help="faust-streaming diff and match agents (distributed)")
    streams_sub = streams.add_subparsers(dest="action", required=True)
    streams_sub.add_parser("worker", help="run a stream worker").set_defaults(func=cmd_streams_worker)
    notifier = sub.add_parser("notifier", help="deliver one channel's alerts from Kafka (distributed)")
    notifier.add_argument("--channel", required=True, choices=sorted({*PLUGINS, "tg"}),
                          help="the channel whose deliveries this notifier sends")
    notifier.set_defaults(func=cmd_notifier)
    sub.add_parser("bot", help="the chatbots (Telegram, Slack /vigie) on the Redis store and view (distributed)"
                   ).set_defaults(func=cmd_bot)
    check = sub.add_parser("healthcheck", help="exit 0 when a distributed role is healthy")
    check.add_argument("--role", required=True, choices=ROLES, help="the role to check")
    check.add_argument("--channel", help="with --role notifier: the channel's heartbeat only")
    check.set_defaults(func=cmd_healthcheck)
