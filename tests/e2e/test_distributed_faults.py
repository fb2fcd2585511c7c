"""The distributed runtime under faults: poison messages, a broker restart, and Kafka's own tooling on our topics.

Same harness as tests/e2e/test_distributed.py (one isolated `Deployment` per test: topic prefix, faust app id and
Redis namespace of its own; role processes started with the `vigie` CLI and stopped by PID), same input (the
local Opendatasoft portal serving two real publications) and the same oracle: the embedded runtime's alerts.

- Poison: garbage on every topic a role consumes lands in that topic's dead-letter topic with a reason and its
  original bytes, and every expected alert still reaches the receiver, once.
- Broker restart: a broker owned by the test (its own state directory and ports, the jars of the session's
  local dir) is restarted with `deploy/local/kafka.sh restart` while deliveries flow; nothing is lost, and the
  Kafka clients' reconnect errors are collapsed in the roles' logs (thousands of lines a restart otherwise).
- Kafka's console consumer reads the deployment's `changes` topic: one CloudEvents JSON envelope per line,
  with the ids of the changes the embedded runtime computes for the same input.
"""


from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from core.codec import CHANGE, DELIVERY, RECORD, SUBSCRIPTION, Envelope
from core.model import Subscription
from core.topology import Topics, header
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, DemoStory
from runtime.distributed import DistributedSettings, topic_specs
from runtime.embedded import Embedded
from runtime.settings import Settings
from streams.bus.kafka import ensure_topics
from subscriptions.sqlite import SqliteSubscriptionStore
from tests import services
from tests.e2e.test_distributed import (
    PARTITIONS,
    Alert,
    Deployment,
    idle_pairs,
    received,
    subscriptions_for,
    wait_for_alerts,
)
from tests.polling import until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

DATASET = "alimconfiance"
CHANNEL = "webhook"
KAFKA_SH = services.KAFKA_SH


# -- the oracle --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    alerts: set[Alert]
    changes: dict[str, tuple[str, str, tuple[str, ...]]]  # change id → (record key, op, kinds), baseline aside


async def embedded_run(tmp_path: Path, portal: FakePortal, story: DemoStory,
                       subscriptions: list[Subscription]) -> Expected:
    """What the embedded runtime computes for the two publications: its alerts, and the changes past the baseline."""
    url = portal.url_for(DATASET_ID)
    settings = Settings(state=f"sqlite:///{tmp_path / 'embedded.db'}", sources=[url])
    store = SqliteSubscriptionStore(settings.subscription_store)
    for subscription in subscriptions:
        await store.put(subscription)
    await store.aclose()
    alerts: set[Alert] = set()
    changes: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    async with Embedded(settings) as vigie:
        for snapshot in (story.first, story.second):
            portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
            outcome = await vigie.poll(url)
            alerts |= {(d.subscription.id, d.key, d.change.kind) for d in outcome.deliveries}
            if not outcome.baseline:  # a baseline fills the state silently: no change is published (or logged)
                changes |= {c.id: (c.key, c.op.value, tuple(c.kinds)) for c in outcome.changes}
    return Expected(alerts, changes)


def still_running(deployment: Deployment) -> None:
    dead = {name: proc.returncode for name, proc in deployment.procs.items() if proc.returncode is not None}
    assert not dead, f"role processes exited: {dead}\n{deployment.logs()}"


# -- poison ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poison:
    topic: str
    partition: int
    key: bytes
    value: bytes | None
    what: str
    headers: tuple[tuple[str, bytes], ...] = ()


def envelope(kind: str, data: dict[str, Any], nonce: str) -> bytes:
    return Envelope(f"poison-{nonce}", kind, "/tests/poison", nonce, datetime.now(UTC), data).encode()


def garbage(topic: str, nonce: str, kinds: dict[str, bytes | None]) -> list[Poison]:
    """One message per kind of garbage, spread over the partitions, each recognisable by its key."""
    return [Poison(topic, index % PARTITIONS, f"poison-{nonce}-{index}".encode(), value, what)
            for index, (what, value) in enumerate(kinds.items())]


def poison_for(topics: Topics, nonce: str) -> list[Poison]:
    """Garbage for every topic a role consumes: not JSON, JSON that is no envelope, an envelope of the wrong
    type, an envelope of the right type with its data fields missing, and a tombstone where none is allowed."""
    def common(right: str, wrong: str) -> dict[str, bytes | None]:
        return {
            "not JSON": b"\x00\xff not json " + nonce.encode(),
            "JSON, not an envelope": json.dumps({"hello": nonce}).encode(),
            "wrong envelope type": envelope(wrong, {"nonce": nonce}, nonce),
            "missing data fields": envelope(right, {"nonce": nonce}, nonce),
        }

    poison = garbage(topics.records(DATASET), nonce, {**common(RECORD, CHANGE), "tombstone": None})
    poison += garbage(topics.changes, nonce, {**common(CHANGE, RECORD), "tombstone": None})
    poison += garbage(topics.deliveries(CHANNEL), nonce, {**common(DELIVERY, CHANGE), "tombstone": None})
    retry = garbage(topics.retry(CHANNEL), nonce, {**common(DELIVERY, CHANGE), "tombstone": None})
    poison += retry
    # what the notifier itself writes to the retry topic, with headers it cannot read
    poison += [Poison(topics.retry(CHANNEL), 0, f"poison-{nonce}-attempt".encode(), envelope(DELIVERY, {}, nonce),
                      "unreadable attempt header", (("vigie-attempt", b"many"),)),
               Poison(topics.retry(CHANNEL), 1, f"poison-{nonce}-not-before".encode(),
                      envelope(DELIVERY, {}, nonce), "unreadable not-before header",
                      (("vigie-attempt", b"1"), ("vigie-not-before", b"soon")))]
    # `subscriptions` is compacted: a tombstone is a delete (not poison) and every message needs a key
    subscription = envelope(SUBSCRIPTION, {"id": "someone-else", "area": {"type": "everywhere"},
                                           "destination": "webhook+http://127.0.0.1:9/", "secret": None}, nonce)
    poison += garbage(topics.subscriptions, nonce, {**common(SUBSCRIPTION, CHANGE),
                                                   "key is not the subscription id": subscription})
    return poison


async def inject(bootstrap: str, poison: list[Poison]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send(p.topic, p.value, key=p.key, partition=p.partition,
                                    headers=list(p.headers) or None) for p in poison]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def tombstones(bootstrap: str, topic: str, keys: list[bytes]) -> None:
    """Deletes of subscriptions nobody made: legal on `subscriptions`, never dead-lettered."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, None, key=key) for key in keys])
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def reader(bootstrap: str, topics: list[str]) -> AsyncIterator[Callable[[], Awaitable[dict[str, list[Any]]]]]:
    """A consumer outside any group on every partition of `topics`, from the beginning; the function it yields
    returns everything read so far, by topic, after reading what the topics hold now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = [TopicPartition(topic["topic"], p["partition"]) for topic in await admin.describe_topics(topics)
                      for p in topic["partitions"]]
    finally:
        await admin.close()
    assert {tp.topic for tp in partitions} == set(topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: dict[str, list[Any]] = {topic: [] for topic in topics}
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)

        async def read() -> dict[str, list[Any]]:
            ends = await consumer.end_offsets(partitions)
            async with asyncio.timeout(30):
                while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                    for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                        found[tp.topic] += messages
            return found

        yield read
    finally:
        await consumer.stop()


def lost(poison: list[Poison], letters: dict[str, list[Any]], topics: Topics) -> list[Poison]:
    """The poison messages not (yet) in the dead-letter topic of their topic."""
    return [p for p in poison if not any(m.key == p.key for m in letters.get(topics.dlq(p.topic), []))]


@pytest.mark.timeout(120)
async def test_poison_on_every_consumed_topic_is_dead_lettered_and_the_pipeline_goes_on(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_run(tmp_path, portal, story, subscriptions)
    topics = Topics(deployment.prefix)
    settings = DistributedSettings(bus=f"kafka://{deployment.bootstrap}", store=deployment.redis_url,
                                   topic_prefix=deployment.prefix, partitions=PARTITIONS, datasets=[DATASET])
    await ensure_topics(deployment.bootstrap, topic_specs(settings))  # as the roles would: poison goes first
    await deployment.subscribe(subscriptions)
    legal = [f"poison-{uuid.uuid4().hex[:8]}-deleted".encode() for _ in range(PARTITIONS)]
    await tombstones(deployment.bootstrap, topics.subscriptions, legal)
    poison = poison_for(topics, "before")
    await inject(deployment.bootstrap, poison)

    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier", "notifier", "--channel", CHANNEL)
    url = portal.url_for(DATASET_ID)
    for round_, snapshot in (("between", story.first), ("during", story.second)):
        portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
        await deployment.produce_once(url)
        more = poison_for(topics, round_)  # after the first publication, then while its alerts flow
        await inject(deployment.bootstrap, more)
        poison += more

    await wait_for_alerts(deployment, receiver, len(expected.alerts))
    await deployment.drained([*idle_pairs(deployment), (f"{deployment.app_id}-notifier-{CHANNEL}-retry",
                                                        topics.retry(CHANNEL))])
    letters: dict[str, list[Any]] = {}
    async with reader(deployment.bootstrap, sorted({topics.dlq(p.topic) for p in poison})) as read:

        async def all_dead_lettered() -> bool:
            letters.update(await read())
            return not lost(poison, letters, topics)

        await until(all_dead_lettered, "every poison message dead-lettered", 60,
                    lambda: "\n".join(f"{p.topic}: {p.what}" for p in lost(poison, letters, topics)) + "\n"
                    + deployment.logs())

    for p in poison:
        for letter in (m for m in letters[topics.dlq(p.topic)] if m.key == p.key):
            assert letter.value == p.value, f"{p.topic} {p.what}: the original bytes are kept"
            assert header(letter.headers, "vigie-dlq-reason"), f"{p.topic} {p.what}: a reason"
            assert header(letter.headers, "vigie-dlq-topic") == p.topic
            assert header(letter.headers, "vigie-dlq-partition") == str(p.partition)
    dead_keys = {m.key for m in letters[topics.dlq(topics.subscriptions)]}
    assert not dead_keys & set(legal), "a tombstone on `subscriptions` is a delete, not poison"
    ours = {p.key for p in poison}
    for dlq, messages in letters.items():  # consumers' dead letters name their topic (the producer's quarantine not)
        strays = [(m.key, header(m.headers, "vigie-dlq-reason")) for m in messages
                  if header(m.headers, "vigie-dlq-topic") and m.key not in ours]
        assert not strays, f"{dlq}: only the poison is dead-lettered"

    got = received(receiver)
    assert set(got) == expected.alerts
    assert len(got) == len(expected.alerts)
    assert receiver.duplicates == 0, "no redelivery without a crash"
    assert receiver.rejected == 0
    still_running(deployment)


# -- a broker restart --------------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def session_kafka_libs() -> Path:
    """The jars the session's services were started from (VIGIE_LOCAL_DIR or the repo's .local)."""
    local = Path(os.environ.get("VIGIE_LOCAL_DIR") or services.REPO_ROOT / ".local")
    libs = local / "kafka" / "libs"
    if not (libs / "VERSION").is_file():
        services.unavailable(f"no Kafka jars in {libs}: run `deploy/local/kafka.sh fetch` first")
    return libs


@dataclass
class OwnBroker:
    """A single-node Kafka of the test's own, managed with deploy/local/kafka.sh (which stops it by PID)."""

    local_dir: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "VIGIE_LOCAL_DIR": str(self.local_dir), "KAFKA_PORT": str(self.port),
                "KAFKA_CONTROLLER_PORT": str(self.controller_port), "KAFKA_START_TIMEOUT": "60"}

    def run(self, command: str) -> None:
        result = subprocess.run([str(KAFKA_SH), command], env=self.env(), capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, f"kafka.sh {command} exited {result.returncode}:\n{result.stderr}"

    async def restart(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(str(KAFKA_SH), "restart", env=self.env(),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    def pid(self) -> int | None:
        path = self.local_dir / "kafka" / "kafka.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        return None


@contextlib.asynccontextmanager
async def own_broker(tmp_path: Path) -> AsyncIterator[OwnBroker]:
    local = tmp_path / "kafka-local"
    (local / "kafka").mkdir(parents=True)
    (local / "kafka" / "libs").symlink_to(session_kafka_libs(), target_is_directory=True)
    port, controller = free_ports(2)
    broker = OwnBroker(local, port, controller)
    try:
        await asyncio.to_thread(broker.run, "start")
        yield broker
    finally:
        await asyncio.to_thread(broker.run, "stop")
        shutil.rmtree(local / "kafka" / "data", ignore_errors=True)  # its logs stay, next to the roles' logs


LIBRARY_LINE = re.compile(r"^\S+ \[\w+ *\] (?P<message>.*) \[(?P<logger>(?:aiokafka|faust|mode)(?:\.[\w.]+)?)\]")
MOST_LINES_PER_MESSAGE = 30  # 10 s windows: the first line and a count per window, over a test of a few minutes


def library_lines(log: Path) -> Counter[str]:
    """How many lines of a role's console log each Kafka-library message wrote (digits aside)."""
    found: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if match := LIBRARY_LINE.match(line):
            found[f"{match['logger']}: {re.sub(r'[0-9]+', '#', match['message'])}"] += 1
    return found


def assert_collapsed(deployed: Deployment) -> str:
    """No Kafka-library message floods a role's log; a summary of the busiest, for the test's output."""
    busiest = []
    for log in sorted(deployed.workdir.glob("*.log")):
        lines = library_lines(log)
        floods = {message: n for message, n in lines.items() if n > MOST_LINES_PER_MESSAGE}
        assert not floods, f"{log.name}: {floods}"
        busiest.append(f"{log.name}: {sum(lines.values())} library lines, busiest {lines.most_common(1)}")
    return "; ".join(busiest)


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


@pytest.mark.timeout(180)
async def test_a_broker_restart_mid_stream_loses_nothing(
        redis_url: str, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_run(tmp_path, portal, story, subscriptions)
    async with own_broker(tmp_path) as broker:
        # a slow partner (per-destination rate) keeps deliveries flowing for several seconds
        deployed = Deployment(broker.bootstrap, redis_url, tmp_path / "deployment",
                            extra_env={"VIGIE_WEBHOOK_RATE": "60"})
        deployed.workdir.mkdir()
        try:
            await deployed.subscribe(subscriptions)
            await deployed.start("streams", "streams", "worker")
            await deployed.start("notifier", "notifier", "--channel", CHANNEL)
            url = portal.url_for(DATASET_ID)
            portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
            await deployed.produce_once(url)
            portal.publish(DATASET_ID, story.second.rows, modified=story.second.modified)
            await deployed.produce_once(url)

            total = len(expected.alerts)
            await until(lambda: _true(len(receiver.received) >= total // 10), "the first alerts arrive", 60,
                        deployed.logs)
            before = len(receiver.received)
            assert before < total, "the restart must come while deliveries flow"
            pid = broker.pid()
            started = time.monotonic()
            restart = await broker.restart()
            try:
                await until(lambda: _not(port_open(broker.port)), "the broker goes down", 60, deployed.logs)
                down_at = len(receiver.received)
                _, err = await asyncio.wait_for(restart.communicate(), 120)
            finally:
                if restart.returncode is None:  # the broker itself is stopped by `kafka.sh stop`, by PID
                    restart.kill()
                    await restart.wait()
            assert restart.returncode == 0, err.decode()
            assert broker.pid() != pid
            restarted_in = time.monotonic() - started

            await wait_for_alerts(deployed, receiver, total, timeout=90)
            await deployed.drained(idle_pairs(deployed), deadline_s=60)
            got = received(receiver)
            assert len(got) == len(set(got)) == total, "each alert once at the receiver (by webhook-id)"
            assert set(got) == expected.alerts
            assert receiver.rejected == 0
            still_running(deployed)
            logs = assert_collapsed(deployed)
            print(f"alerts before the restart: {before}, when the broker was down: {down_at}, of {total}; "
                  f"restart took {restarted_in:.1f}s; redeliveries absorbed: {receiver.duplicates}\n{logs}")
        finally:
            await deployed.stop_all()
            await deployed.cleanup()


async def _true(value: bool) -> bool:
    return value


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


# -- Kafka's own tooling -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_kafka_console_consumer_reads_the_changes_topic(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_run(tmp_path, portal, story, subscriptions)
    await deployment.subscribe(subscriptions)
    await deployment.start("streams", "streams", "worker")
    url = portal.url_for(DATASET_ID)
    for snapshot in (story.first, story.second):
        portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
        await deployment.produce_once(url)
    topic = f"{deployment.prefix}changes"
    await deployment.drained([(deployment.app_id, f"{deployment.prefix}records.{DATASET}")])
    async with reader(deployment.bootstrap, [topic]) as read:
        ours = (await read())[topic]
    assert ours, "the pipeline wrote changes"

    lines = await asyncio.to_thread(services.console_consume, topic, len(ours), bootstrap=deployment.bootstrap,
                                    idle_timeout_ms=15_000)
    assert len(lines) == len(ours)
    ids = []
    for line in lines:
        doc = json.loads(line)
        assert doc["specversion"] == "1.0"
        assert doc["type"] == CHANGE
        assert doc["vigieversion"] == "1"
        assert doc["datacontenttype"] == "application/json"
        assert {"id", "source", "subject", "time"} <= doc.keys()
        data = doc["data"]
        assert data["id"] == doc["id"]
        assert data["op"] in {"created", "updated", "removed"}
        assert isinstance(data["kinds"], list)
        assert data["kinds"]
        ids.append(doc["id"])
        assert (data["key"], data["op"], tuple(data["kinds"])) == expected.changes.get(doc["id"]), doc["id"]
    assert Counter(ids) == Counter(json.loads(m.value)["id"] for m in ours)
    assert set(ids) == set(expected.changes), "the changes the embedded runtime computes, by id"
