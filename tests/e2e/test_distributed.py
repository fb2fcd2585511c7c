"""The distributed runtime end to end, as real processes on a real Kafka broker and Redis.

Local Opendatasoft portal (real 2018-2019 rows, two publications) → `vigie producer --once` → Kafka →
`vigie streams worker` (faust) → `vigie notifier --channel webhook` → a local receiver that verifies the
Standard Webhooks signatures and dedupes on webhook-id. The expected alerts are the embedded runtime's for the
same input (`Embedded` on a temporary SQLite state), compared as sets of (subscription, idempotency key, kind).

Every test gets its own topic prefix, faust app id and Redis namespace, so tests share the services without
seeing each other; the harness stops (by PID) every process it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from redis.asyncio import Redis

from core.geo import AdminArea, Area, Circle, Everywhere, Point
from core.model import Filter, Subscription
from notifiers.webhook import new_secret
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, DemoSnapshot, DemoStory
from runtime.embedded import Embedded
from runtime.settings import Settings
from streams.bus.kafka import ensure_topics
from subscriptions.publisher import KafkaSubscriptionPublisher
from subscriptions.redis import RedisSubscriptionStore
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.polling import until

VIGIE = Path(sys.executable).parent / "vigie"
PARTITIONS = 4
Alert = tuple[str, str, str]  # subscription id, idempotency key (webhook-id), kind

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


@dataclass
class Deployment:
    """One isolated Vigie deployment: its settings, its role processes, and waits on its progress."""

    bootstrap: str
    redis_url: str
    workdir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"t{self.tag}."

    @property
    def app_id(self) -> str:
        return f"vigie-{self.tag}"

    @property
    def namespace(self) -> str:
        return f"vigie-{self.tag}"

    def env(self, sources: Iterable[str] = ()) -> dict[str, str]:
        return {
            **os.environ, "VIGIE_BUS": f"kafka://{self.bootstrap}", "VIGIE_STORE": self.redis_url,
            "VIGIE_TOPIC_PREFIX": self.prefix, "VIGIE_APP_ID": self.app_id, "VIGIE_NAMESPACE": self.namespace,
            "VIGIE_PARTITIONS": str(PARTITIONS), "VIGIE_DATA_DIR": str(self.workdir / "data"),
            "VIGIE_STREAMS_STORE": "memory://", "VIGIE_DATASETS": "alimconfiance", "VIGIE_SOURCES": ",".join(sources),
            "VIGIE_LOG_LEVEL": "INFO", "VIGIE_WEBHOOK_RATE": "10000", "VIGIE_CLAIM_TTL": "15",
            "VIGIE_HTTP_TIMEOUT": "5", **self.extra_env,
        }

    async def start(self, name: str, *args: str) -> asyncio.subprocess.Process:
        """Start `vigie *args` as role process `name`, with its own data directory and log file."""
        log = (self.workdir / f"{name}.log").open("ab")
        env = {**self.env(), "VIGIE_DATA_DIR": str(self.workdir / "data" / name)}
        proc = await asyncio.create_subprocess_exec(str(VIGIE), *args, env=env, stdout=log, stderr=log,
                                                    cwd=self.workdir)
        log.close()
        self.procs[name] = proc
        return proc

    async def start_roles(self, *, workers: int, notifiers: int, channel: str = "webhook") -> None:
        """`workers` stream workers (streams-1…) and `notifiers` notifiers of `channel` (notifier-1…)."""
        for n in range(1, workers + 1):
            await self.start(f"streams-{n}", "streams", "worker")
        for n in range(1, notifiers + 1):
            await self.start(f"notifier-{n}", "notifier", "--channel", channel)

    async def produce_once(self, source: str) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            str(VIGIE), "producer", "--once", env=self.env([source]), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=self.workdir)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()[-3000:]
        summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return summary

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.returncode is None:
            proc.send_signal(sig)

    async def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    def logs(self, tail: int = 40) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    async def subscribe(self, subscriptions: Iterable[Subscription]) -> None:
        bootstrap = self.bootstrap
        publisher = KafkaSubscriptionPublisher(bootstrap, topic=f"{self.prefix}subscriptions", partitions=PARTITIONS,
                                               ensure=lambda spec: ensure_topics(bootstrap, [spec]))
        store = RedisSubscriptionStore(self.redis_url, publisher=publisher, namespace=self.namespace)
        try:
            for subscription in subscriptions:
                await store.put(subscription)
        finally:
            await store.aclose()

    async def produced(self, topic: str) -> int:
        """How many messages `topic` holds (the sum of its end offsets)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        finally:
            await consumer.stop()
        return sum(ends.values())

    async def lag(self, group: str, topic: str) -> int:
        """Messages of `topic` not yet committed by consumer group `group`."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            described = await admin.describe_topics([topic])
            partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())

    async def drained(self, pairs: Iterable[tuple[str, str]], deadline_s: float = 60.0) -> None:
        """Until every (group, topic) has committed everything: the pipeline is idle. Polled: Kafka has no event
        for "a group caught up"."""
        pending = list(pairs)
        try:
            async with asyncio.timeout(deadline_s):
                while pending:
                    if await self.lag(*pending[0]) == 0:
                        pending.pop(0)
                    else:
                        await asyncio.sleep(0.2)
        except TimeoutError:
            lags = {f"{group} on {topic}": await self.lag(group, topic) for group, topic in pending}
            raise AssertionError(f"not drained within {deadline_s}s: {lags}\n{self.logs()}") from None

    async def cleanup(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith((self.prefix, self.app_id))]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()
        redis = Redis.from_url(self.redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"*{self.namespace}*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


def subscriptions_for(receiver: WebhookReceiver) -> list[Subscription]:
    """Every area and filter shape, each to its own endpoint of the receiver."""
    specs: list[tuple[str, Area, Filter]] = [
        ("sub_all", Everywhere(), Filter()),
        ("sub_paris", Circle(Point(48.8566, 2.3522), 5_000), Filter()),
        ("sub_rhone", AdminArea("departement", "69"), Filter()),
        ("sub_bad", Everywhere(), Filter(min_rating=3)),
        ("sub_trend", Everywhere(), Filter(kinds=frozenset({"downgrade", "upgrade", "removed"}))),
    ]
    made = []
    for sub_id, area, filt in specs:
        secret = new_secret()
        endpoint = receiver.add_endpoint(sub_id, secret).replace("http://", "webhook+http://", 1)
        made.append(Subscription(sub_id, area, endpoint, filt, lang="en", secret=secret))
    return made


async def embedded_alerts(tmp_path: Path, portal: FakePortal, story: DemoStory,
                          subscriptions: list[Subscription]) -> set[Alert]:
    """What the embedded runtime would deliver for the same publications."""
    return set().union(*await embedded_alerts_of(tmp_path, portal, [story.first, story.second], subscriptions))


async def embedded_alerts_of(tmp_path: Path, portal: FakePortal, snapshots: Sequence[DemoSnapshot],
                             subscriptions: list[Subscription]) -> list[set[Alert]]:
    """What the embedded runtime delivers for each of these publications."""
    url = portal.url_for(DATASET_ID)
    settings = Settings(state=f"sqlite:///{tmp_path / 'embedded.db'}", sources=[url])
    store = SqliteSubscriptionStore(settings.subscription_store)
    for subscription in subscriptions:
        await store.put(subscription)
    await store.aclose()
    alerts = []
    async with Embedded(settings) as vigie:
        for snapshot in snapshots:
            portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
            outcome = await vigie.poll(url)
            alerts.append({(d.subscription.id, d.key, d.change.kind) for d in outcome.deliveries})
    return alerts


def received(receiver: WebhookReceiver) -> list[Alert]:
    return [(r.event["data"]["subscription_id"], r.webhook_id, r.event["type"].rpartition(".")[2])
            for r in receiver.received]


async def publish_story(deployment: Deployment, portal: FakePortal, story: DemoStory) -> list[dict[str, Any]]:
    url = portal.url_for(DATASET_ID)
    summaries = []
    for snapshot in (story.first, story.second):
        portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
        summaries.append(await deployment.produce_once(url))
    return summaries


async def wait_for_alerts(deployment: Deployment, receiver: WebhookReceiver, count: int,
                          timeout: float = 90.0) -> None:  # noqa: ASYNC109 - a deadline is the point
    try:
        await receiver.wait_for(count, timeout=timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{deployment.logs()}") from None


def idle_pairs(deployment: Deployment) -> list[tuple[str, str]]:
    p = deployment.prefix
    return [(deployment.app_id, f"{p}records.alimconfiance"), (deployment.app_id, f"{p}changes"),
            (f"{deployment.app_id}-notifier-webhook", f"{p}deliveries.webhook")]


async def test_pipeline_delivers_what_the_embedded_runtime_delivers(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_alerts(tmp_path, portal, story, subscriptions)
    await deployment.subscribe(subscriptions)
    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier", "notifier", "--channel", "webhook")

    first, second = await publish_story(deployment, portal, story)
    await wait_for_alerts(deployment, receiver, len(expected))
    await deployment.drained(idle_pairs(deployment))

    assert first["sources"][0]["baseline"] is True
    assert second["sources"][0]["baseline"] is False
    assert len(expected) > 800
    got = received(receiver)
    assert len(got) == len(set(got))
    assert set(got) == expected
    assert receiver.rejected == 0


async def test_scale_out_survives_a_killed_worker_and_a_killed_notifier(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_alerts(tmp_path, portal, story, subscriptions)
    await deployment.subscribe(subscriptions)
    await deployment.start_roles(workers=2, notifiers=2)
    url = portal.url_for(DATASET_ID)
    portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
    await deployment.produce_once(url)
    portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
    await deployment.produce_once(url)

    changes = f"{deployment.prefix}changes"
    await until(lambda: _more_than(deployment.produced(changes), 0), "the diff agents emit changes")
    deployment.kill("streams-1")
    await until(lambda: _true(len(receiver.received) >= 50), "the first alerts arrive")
    deployment.kill("notifier-1")
    try:
        await receiver.wait_for(len(expected), timeout=150)
    except TimeoutError as exc:
        missing = sorted(expected - set(received(receiver)))
        raise AssertionError(f"{exc}; missing (subscription, webhook-id, kind): {missing[:20]}\n"
                             f"logs in {deployment.workdir}\n{deployment.logs()}") from None
    await deployment.drained(idle_pairs(deployment))

    got = received(receiver)
    assert len(got) == len(set(got)), "the receiver stores each webhook-id once"
    assert set(got) == expected
    assert deployment.procs["streams-2"].returncode is None
    assert deployment.procs["notifier-2"].returncode is None
    print(f"redeliveries absorbed by the receiver's dedupe: {receiver.duplicates}")


async def _more_than(value: Awaitable[int], floor: int) -> bool:
    return await value > floor


async def _true(value: bool) -> bool:
    return value


async def test_rocksdb_tables_come_back_after_the_worker_restarts(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    """The production table store (rocksdb://, rocksdict): a stream worker SIGKILLed after the baseline and
    started again on the same data directory reopens its tables and the changelog offsets they reached, and the
    next publication alerts exactly as the embedded runtime does."""
    deployment.extra_env["VIGIE_STREAMS_STORE"] = "rocksdb://"
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_alerts(tmp_path, portal, story, subscriptions)
    await deployment.subscribe(subscriptions)
    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier", "notifier", "--channel", "webhook")
    url = portal.url_for(DATASET_ID)
    portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
    await deployment.produce_once(url)
    await deployment.drained(idle_pairs(deployment)[:1])

    deployment.kill("streams")
    await deployment.procs["streams"].wait()
    assert persisted_offsets(deployment.workdir / "data" / "streams"), "each table partition knows its offset"
    await deployment.start("streams", "streams", "worker")
    portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
    await deployment.produce_once(url)
    await wait_for_alerts(deployment, receiver, len(expected), timeout=150)
    await deployment.drained(idle_pairs(deployment))

    got = received(receiver)
    assert len(got) == len(set(got))
    assert set(got) == expected


def persisted_offsets(data_dir: Path) -> list[int]:
    """The changelog offset each rocksdb table partition says it holds (faust reads it to replay less at start);
    fails when a partition has none."""
    offsets = []
    paths = sorted(data_dir.rglob("records-*.db")) + sorted(data_dir.rglob("groups-*.db"))
    assert paths, f"no rocksdb table files under {data_dir}"
    for path in paths:
        db = RocksDBOptions().open(path)
        try:
            raw = db.get(RocksDBStore.offset_key)
        finally:
            db.close()
        assert raw is not None, f"{path.name} has no persisted changelog offset"
        offsets.append(int(raw))
    return offsets
