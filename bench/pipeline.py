"""Vigie end to end through a real Kafka broker and Redis, next to the embedded runtime on the same input.

    deploy/local/services.sh up && . .local/services.env
    python bench/pipeline.py [--quick] [--events 10000] [--every 10] [--rate 1000] [--workers 1] [--notifiers 1]

Input: real Alim'Confiance inspections (runtime/demo_data/), one subscriber per postcode (webhook, each to its
own endpoint of a local receiver that verifies every signature and dedupes, bench/receiver.py), so every change
is one alert. A baseline snapshot
fills the state of both runtimes, then two rounds regrade every record (one downgrade/upgrade alert each):

- burst:  all edited records published at once; sustained events/s = events / (last receipt - first publish),
          latency = receipt - publish start;
- paced:  records published one by one at `--rate` per second; latency = receipt - that record's publish;
- republication: the whole snapshot again, one record in `--every` (10) regraded (a weekly publication), on both
          runtimes: events = records in the snapshot, time = publish start until every alert is received and the
          stream workers committed everything; the producer sends only what changed since its digests
          (producers/digests.py), so the ratio to the embedded runtime shows what unchanged records still cost.

Each phase also prints the CPU time it cost per event, by process (the bench's own publisher and receiver,
each role process, and the rest of the machine: the broker and Redis).

The distributed side runs the real `vigie streams worker` and `vigie notifier` processes (faust + aiokafka)
and publishes with producers.kafka_publisher's envelopes; the embedded side runs its Processor (diff, match,
outbox in one SQLite transaction) and OutboxWorker on the same snapshot. Neither applies rate limits (they
exist to protect real destinations, not a loopback receiver); both send with 64 deliveries in flight.
Loopback only; every stage is bounded by --timeout; processes, topics and Redis keys are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from redis.asyncio import Redis

from bench.receiver import LeanReceiver
from core.geo import AdminArea
from core.index import SubscriptionIndex
from core.model import Record, Subscription, stable_hash
from core.ports import RawSnapshot, Snapshot
from core.profiles import profile_for
from notifiers.ratelimit import RateLimiter
from notifiers.webhook import new_secret
from notifiers.worker import OutboxWorker
from producers.datasets.alimconfiance import AlimConfianceAdapter
from producers.digests import RedisDigests, delta
from producers.kafka_publisher import KafkaPublisher, end_envelope, record_envelope
from runtime.demo.snapshots import load_rows
from runtime.distributed import DistributedSettings, topic_specs
from runtime.embedded import Embedded
from runtime.settings import Settings
from streams.bus.kafka import ensure_topics
from subscriptions.publisher import KafkaSubscriptionPublisher
from subscriptions.redis import RedisSubscriptionStore
from subscriptions.sqlite import SqliteSubscriptionStore

VIGIE = Path(sys.executable).parent / "vigie"
SOURCE = "bench://alimconfiance"
PARTITIONS = 4


@dataclass
class Inputs:
    base: Snapshot
    rounds: list[Snapshot]
    subscriptions: list[Subscription]
    every: int = 10


LABELS = ("Très satisfaisant", "Satisfaisant", "A améliorer", "A corriger de manière urgente")


def national(rows: list[dict[str, Any]], events: int) -> list[dict[str, Any]]:
    """`events` rows: the real ones, then copies of them as other inspections (a numbered suffix on the inspection
    number), to measure a national-size snapshot (~72k) with the 15,463 real rows."""
    return [row if i < len(rows) else {**row, "numero_inspection": f"{row['numero_inspection']}-c{i // len(rows)}"}
            for i, row in ((i, rows[i % len(rows)]) for i in range(events))]


def snapshots(events: int, every: int) -> tuple[Snapshot, list[Snapshot]]:
    """The baseline; two rounds regrading every record (one downgrade/upgrade alert per record: a grade is never
    held by the mass-change guard); then a weekly republication of round B where one record in `every` was
    regraded."""
    rows = national(load_rows(), events)
    adapter = AlimConfianceAdapter()

    def graded(shifts: list[int], tag: str) -> Snapshot:
        changed = []
        for row, shift in zip(rows, shifts, strict=True):
            label = LABELS[(LABELS.index(row["synthese_eval_sanit"]) + shift) % len(LABELS)]
            changed.append({**row, "synthese_eval_sanit": label, "app_code_synthese_eval_sanit": None})
        return _scoped(adapter.to_snapshot(RawSnapshot(SOURCE, changed, True, f"v-{tag}")))

    return _scoped(adapter.to_snapshot(RawSnapshot(SOURCE, rows, True, "v-base"))), [
        graded([1] * len(rows), "A"), graded([2] * len(rows), "B"),
        graded([3 if i % every == 0 else 2 for i in range(len(rows))], "C")]


def _scoped(snapshot: Snapshot) -> Snapshot:
    return Snapshot(snapshot.dataset, SOURCE, snapshot.records, snapshot.complete, snapshot.version)


def subscribers(records: Iterable[Record], receiver: LeanReceiver) -> list[Subscription]:
    """One webhook subscriber per postcode seen, each to its own receiver endpoint."""
    made = []
    for postcode in sorted({r.admin.postcode for r in records if r.admin.postcode}):
        secret, name = new_secret(), f"pc{postcode}"
        endpoint = receiver.add_endpoint(name, secret).replace("http://", "webhook+http://", 1)
        made.append(Subscription(name, AdminArea("postcode", postcode), endpoint, secret=secret))
    return made


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used; 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used (all cores, idle and I/O wait excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


@dataclass
class CpuMeter:
    """CPU seconds spent between `start()` and `stop()`, by role process and for the machine as a whole."""

    pids: dict[str, int]
    spent: dict[str, float] = field(default_factory=dict)
    _at: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        return {"machine": machine_cpu(), **{name: process_cpu(pid) for name, pid in self.pids.items()}}

    def start(self) -> None:
        self._at = self._read()

    def stop(self) -> None:
        now = self._read()
        self.spent = {name: now[name] - self._at[name] for name in now}
        self.spent["others (broker, Redis, ...)"] = max(0.0, self.spent["machine"] - sum(
            v for k, v in self.spent.items() if k != "machine"))  # clock ticks: a little noise around 0


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def row(self) -> str:
        rate = self.events / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
        return f"{self.name:<40} {self.events:>7} {rate:>12.0f} {p50:>10.0f} {p99:>10.0f}"


def burst_result(name: str, receiver: LeanReceiver, start: float, records: list[Record]) -> Result:
    arrivals = [receiver.arrivals[r.key] for r in records]
    return Result(name, len(records), max(arrivals) - start, [a - start for a in arrivals])


# -- embedded ----------------------------------------------------------------------------------------------


async def embedded(inputs: Inputs, receiver: LeanReceiver, workdir: Path, deadline_s: float) -> list[Result]:
    settings = Settings(state=f"sqlite:///{workdir / 'embedded.db'}")
    store = SqliteSubscriptionStore(settings.subscription_store)
    for subscription in inputs.subscriptions:
        await store.put(subscription)
    await store.aclose()
    matcher = SubscriptionIndex(inputs.subscriptions)
    async with Embedded(settings) as vigie:
        worker = OutboxWorker(vigie.outbox, vigie.channels, concurrency=64, limiter=RateLimiter({}))
        await vigie.processor.process(inputs.base, matcher, at=datetime.now(UTC))
        receiver.reset()
        meter = CpuMeter({"bench (Vigie + receiver)": os.getpid()})
        meter.start()
        start = time.time()
        await vigie.processor.process(inputs.rounds[0], matcher, at=datetime.now(UTC))
        await drain(worker, receiver, len(inputs.rounds[0].records), deadline_s)
        meter.stop()
        result = burst_result("embedded (SQLite), burst", receiver, start, inputs.rounds[0].records)
        result.cpu = meter.spent
        receiver.reset()
        await vigie.processor.process(inputs.rounds[1], matcher, at=datetime.now(UTC))
        await drain(worker, receiver, len(inputs.rounds[1].records), deadline_s)
        return [result, await embedded_republication(vigie, worker, matcher, inputs, receiver=receiver,
                                                      deadline_s=deadline_s)]


async def drain(worker: OutboxWorker, receiver: LeanReceiver, count: int, deadline_s: float) -> None:
    async with asyncio.timeout(deadline_s):
        while len(receiver.arrivals) < count:
            await worker.drain(limit=1000)


async def embedded_republication(vigie: Embedded, worker: OutboxWorker, matcher: SubscriptionIndex,
                                 inputs: Inputs, *, receiver: LeanReceiver, deadline_s: float) -> Result:
    snapshot, changed = inputs.rounds[2], regraded(inputs)
    receiver.reset()
    meter = CpuMeter({"bench (Vigie + receiver)": os.getpid()})
    meter.start()
    start = time.time()
    await vigie.processor.process(snapshot, matcher, at=datetime.now(UTC))
    await drain(worker, receiver, len(changed), deadline_s)
    meter.stop()
    seconds = max(time.time() - start, 1e-9)
    return Result(f"embedded, republication (1 in {inputs.every} changed)", len(snapshot.records), seconds,
                  [receiver.arrivals[r.key] - start for r in changed], meter.spent)


def regraded(inputs: Inputs) -> list[Record]:
    """The records the republication changed against round B."""
    before = {r.key: r.fingerprint for r in inputs.rounds[1].records}
    return [r for r in inputs.rounds[2].records if before.get(r.key) != r.fingerprint]


# -- distributed -------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    bootstrap: str
    redis_url: str
    workdir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"bench{self.tag}."

    def env(self) -> dict[str, str]:
        return {**os.environ, "VIGIE_BUS": f"kafka://{self.bootstrap}", "VIGIE_STORE": self.redis_url,
                "VIGIE_TOPIC_PREFIX": self.prefix, "VIGIE_APP_ID": f"bench-{self.tag}",
                "VIGIE_NAMESPACE": f"bench-{self.tag}", "VIGIE_PARTITIONS": str(PARTITIONS),
                "VIGIE_DATA_DIR": str(self.workdir / "data"), "VIGIE_STREAMS_STORE": "memory://",
                "VIGIE_DATASETS": "alimconfiance", "VIGIE_WEBHOOK_RATE": "1000000",
                "VIGIE_LOG_LEVEL": os.environ.get("VIGIE_LOG_LEVEL", "WARNING")}

    async def start(self, name: str, *args: str) -> None:
        with (self.workdir / f"{name}.log").open("ab") as log:
            self.procs[name] = await asyncio.create_subprocess_exec(
                str(VIGIE), *args, env=self.env(), stdout=log, stderr=log, cwd=self.workdir)

    def meter(self) -> CpuMeter:
        return CpuMeter({"bench (publisher + receiver)": os.getpid(),
                         **{name: proc.pid for name, proc in self.procs.items()}})

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def subscribe(self, subscriptions: list[Subscription]) -> None:
        bootstrap = self.bootstrap
        publisher = KafkaSubscriptionPublisher(bootstrap, topic=f"{self.prefix}subscriptions", partitions=PARTITIONS,
                                               ensure=lambda spec: ensure_topics(bootstrap, [spec]))
        store = RedisSubscriptionStore(self.redis_url, publisher=publisher, namespace=f"bench-{self.tag}")
        try:
            for start in range(0, len(subscriptions), 20):
                await asyncio.gather(*(store.put(s) for s in subscriptions[start:start + 20]))
        finally:
            await store.aclose()

    async def lag(self, group: str, topic: str) -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await admin.start()
        await consumer.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        finally:
            await consumer.stop()
            await admin.close()
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())

    async def drained(self, deadline_s: float) -> None:
        """Until the stream workers have committed every record (polled: Kafka has no event for it)."""
        for _ in range(int(deadline_s / 0.2)):
            try:
                if await self.lag(f"bench-{self.tag}", f"{self.prefix}records.alimconfiance") == 0:
                    return
            except KafkaError as exc:  # a fresh broker has no group coordinator for a moment: ask again
                if not exc.retriable:
                    raise
            await asyncio.sleep(0.2)
        raise TimeoutError(f"stream workers still behind after {deadline_s}s")

    async def cleanup(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if self.tag in t]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()
        redis = Redis.from_url(self.redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"*bench-{self.tag}*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


async def publish_paced(producer: AIOKafkaProducer, topic: str, snapshot: Snapshot, rate: float) -> dict[str, float]:
    """Each record at its slot of a `rate`-per-second schedule, then the end markers; send time by key."""
    at, snapshot_id = datetime.now(UTC), stable_hash(SOURCE, snapshot.version, "paced")
    sent: dict[str, float] = {}
    start = time.monotonic()
    for index, record in enumerate(snapshot.records):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[record.key] = time.time()
        value = record_envelope(record, snapshot=snapshot_id, version=snapshot.version, source=SOURCE,
                                baseline=False, at=at).encode()
        await producer.send(topic, value, key=profile_for(record.dataset).partition_key(record).encode())
    partitions = sorted(await producer.partitions_for(topic))
    for partition in partitions:
        await producer.send(topic, end_envelope(snapshot, snapshot_id=snapshot_id, complete=True, baseline=False,
                                                partition=partition, partitions=len(partitions), at=at).encode(),
                            partition=partition)
    await producer.flush()
    return sent


async def distributed(inputs: Inputs, receiver: LeanReceiver, cluster: Cluster, args: argparse.Namespace) -> list[
        Result]:
    settings = DistributedSettings(bus=f"kafka://{cluster.bootstrap}", store=cluster.redis_url,
                                   topic_prefix=cluster.prefix, partitions=PARTITIONS, datasets=["alimconfiance"])
    await ensure_topics(cluster.bootstrap, topic_specs(settings))
    await cluster.subscribe(inputs.subscriptions)
    for i in range(args.workers):
        await cluster.start(f"streams-{i}", "streams", "worker")
    for i in range(args.notifiers):
        await cluster.start(f"notifier-{i}", "notifier", "--channel", "webhook")
    publisher = KafkaPublisher(cluster.bootstrap, prefix=cluster.prefix)
    await publisher.start()
    try:
        await publisher.publish(inputs.base, snapshot_id="base", complete=True, baseline=True, at=datetime.now(UTC))
        await cluster.drained(args.timeout)
        receiver.reset()
        phase("kafka burst")
        meter = cluster.meter()
        meter.start()
        start = time.time()
        burst = inputs.rounds[0]
        await publisher.publish(burst, snapshot_id="burst", complete=True, baseline=False, at=datetime.now(UTC))
        await receiver.wait_count(len(burst.records), args.timeout)
        meter.stop()
        results = [burst_result("kafka (faust + aiokafka), burst", receiver, start, burst.records)]
        results[0].cpu = meter.spent
    finally:
        await publisher.stop()
    results.append(await paced(inputs.rounds[1], receiver, cluster, args))
    return [*results, await republication(inputs, receiver, cluster, args)]


async def republication(inputs: Inputs, receiver: LeanReceiver, cluster: Cluster,
                        args: argparse.Namespace) -> Result:
    """A whole snapshot published again with few changes, as the producer role does it: digests loaded from
    Redis, only what changed sent, digests saved; timed until every alert is received and the stream workers
    committed everything (latency: publish start to each alert)."""
    snapshot, changed = inputs.rounds[2], regraded(inputs)
    receiver.reset()
    phase("republication")
    digests = RedisDigests(cluster.redis_url, namespace=f"bench-{cluster.tag}")
    profile = profile_for(snapshot.dataset)
    await digests.save(SOURCE, delta(list(inputs.rounds[1].records), {}, complete=True, profile=profile))
    publisher = KafkaPublisher(cluster.bootstrap, prefix=cluster.prefix)
    await publisher.start()
    meter = cluster.meter()
    meter.start()
    start = time.time()
    try:
        moved = delta(list(snapshot.records), await digests.load(SOURCE), complete=True, profile=profile)
        await publisher.publish(snapshot, snapshot_id="republished", complete=True, baseline=False,
                                at=datetime.now(UTC), moved=moved)
        await digests.save(SOURCE, moved)
    finally:
        await publisher.stop()
        await digests.aclose()
    published = time.time()
    await receiver.wait_count(len(changed), args.timeout)
    await cluster.drained(args.timeout)
    meter.stop()
    latencies = [receiver.arrivals[r.key] - start for r in changed]
    seconds = max(*latencies, published - start, 1e-9)  # the last alert (drained: also the commits)
    print(f"republication: {len(moved.send)} of {len(snapshot.records)} records sent in {published - start:.3f}s, "
          f"last alert after {max(latencies):.3f}s, all offsets committed after {time.time() - start:.3f}s",
          file=sys.stderr)
    return Result(f"kafka, republication (1 in {inputs.every} changed)", len(snapshot.records), seconds,
                  latencies, meter.spent)


def phase(name: str) -> None:
    """Say on stderr when a phase starts (to profile one phase: `py-spy record --pid ...` from that line on)."""
    print(f"{time.strftime('%H:%M:%S')} phase: {name}", file=sys.stderr, flush=True)


async def paced(snapshot: Snapshot, receiver: LeanReceiver, cluster: Cluster, args: argparse.Namespace) -> Result:
    receiver.reset()
    phase("paced")
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5, max_batch_size=256 * 1024)  # as the producer role's
    await producer.start()
    meter = cluster.meter()
    meter.start()
    try:
        sent = await publish_paced(producer, f"{cluster.prefix}records.alimconfiance", snapshot, args.rate)
    finally:
        await producer.stop()
    await receiver.wait_count(len(snapshot.records), args.timeout)
    meter.stop()
    latencies = [receiver.arrivals[key] - at for key, at in sent.items()]
    seconds = max(receiver.arrivals.values()) - min(sent.values())
    return Result(f"kafka, paced at {args.rate:g}/s", len(sent), seconds, latencies, meter.spent)


# -- main --------------------------------------------------------------------------------------------------


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2,000 events, one record in 100 regraded: every phase in about 15 s (the tests run it)")
    parser.add_argument("--events", type=int, default=10_000,
                        help="records edited per round (beyond the 15,463 real ones, copies of them)")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced round: records published per second")
    parser.add_argument("--every", type=int, default=10, help="republication: one record in EVERY regraded")
    parser.add_argument("--workers", type=int, default=1, help="stream worker processes")
    parser.add_argument("--notifiers", type=int, default=1, help="webhook notifier processes")
    parser.add_argument("--timeout", type=float, default=180.0, help="bound on every wait, seconds")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--logs", type=Path,
                        help="copy the role processes' logs here (VIGIE_LOG_LEVEL sets their level)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.every = 2_000, 100
    return args


async def main(args: argparse.Namespace) -> None:
    base, rounds = snapshots(args.events, args.every)
    with tempfile.TemporaryDirectory(prefix="vigie-bench-") as tmp:
        workdir = Path(tmp)
        receiver = LeanReceiver()
        await receiver.start()
        try:
            inputs = Inputs(base, rounds, subscribers(base.records, receiver), args.every)
            print(f"{len(base.records)} records, {len(inputs.subscriptions)} webhook subscribers (one per postcode)")
            results = await embedded(inputs, receiver, workdir, args.timeout)
        finally:
            await receiver.close()
        try:
            results += await run_distributed(base, rounds, workdir, args)
        finally:
            if args.logs:
                keep_logs(workdir, args.logs)
    report(results, args)


def keep_logs(workdir: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, into / log.name)


async def run_distributed(base: Snapshot, rounds: list[Snapshot], workdir: Path,
                          args: argparse.Namespace) -> list[Result]:
    receiver = LeanReceiver()
    await receiver.start()
    cluster = Cluster(args.bootstrap, args.redis, workdir)
    try:
        return await distributed(Inputs(base, rounds, subscribers(base.records, receiver), args.every), receiver,
                                 cluster, args)
    finally:
        await cluster.stop()
        await cluster.cleanup()
        await receiver.close()


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\n{'runtime':<40} {'events':>7} {'events/s':>12} {'p50 ms':>10} {'p99 ms':>10}")
    for result in results:
        print(result.row())
    embedded_rate = results[0].events / results[0].seconds
    kafka_rate = results[2].events / results[2].seconds
    print(f"\nrepublication, kafka time / embedded time: {results[-1].seconds / results[1].seconds:.2f}x "
          f"(target <= 2x at 1 in 100 changed: --every 100)")
    print(f"\nkafka burst / embedded: {kafka_rate / embedded_rate:.2f}x events/s "
          f"({args.workers} stream worker(s), {args.notifiers} notifier(s), {PARTITIONS} partitions, "
          f"{os.cpu_count()} CPUs shared with the broker and Redis)")
    print("targets: >= 5000 events/s sustained; p99 <= 500 ms at 1000 events/s")
    for result in results:
        if result.cpu:
            print(f"\nCPU ms per event, {result.name}:")
            for name, seconds in result.cpu.items():
                print(f"  {name:<36} {seconds * 1000 / result.events:8.3f}")


if __name__ == "__main__":
    os.environ["VIGIE_WEBHOOK_ALLOW"] = "127.0.0.0/8"  # the receivers are on loopback, which the SSRF guard refuses
    asyncio.run(main(options()))
