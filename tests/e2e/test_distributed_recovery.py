"""The distributed runtime recovers from ordinary faults by itself: a paused notifier, a restarted or wiped Redis.

Same harness as tests/e2e/test_distributed.py (an isolated `Deployment` per test, roles started with the `vigie`
CLI and stopped by PID, the local portal's two real publications) and the same oracle: the embedded runtime's
alerts, each received once by webhook-id.

- One of two notifiers paused (SIGSTOP) past its session timeout loses its partitions to the other; resumed
  (SIGCONT), its commits of the batch it held fail (IllegalGeneration, or a partition no longer assigned),
  which it must survive: both keep running and every alert arrives once.
- A Redis of the test's own (deploy/local/redis.sh on another port, its own directory and append-only file) is
  restarted while changes flow: the stream worker's current-state view updater fails, the healthcheck of the
  streams role says so, and once Redis is back the view resumes from its committed offsets by itself and ends
  equal to a view folded from the whole `changes` topic; subscriptions and done marks survived on disk.
- A Redis that comes back empty (the deployment's keys deleted): the notifier holds the deliveries, says so in
  one collapsed error line, drops nothing, and delivers them once the subscriptions are restored. Every
  envelope the run wrote carries the CloudEvents structured-mode content-type header.
"""


from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from core.codec import CHANGE, CONTENT_TYPE, change_from_dict, decode, read
from core.errors import EnvelopeError
from core.model import Change
from core.topology import Topics, header
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, DemoSnapshot, DemoStory
from streams.view_redis import RedisCurrentView
from subscriptions.redis import RedisSubscriptionStore
from tests import services
from tests.e2e.test_distributed import (
    VIGIE,
    Deployment,
    idle_pairs,
    received,
    subscriptions_for,
    wait_for_alerts,
)
from tests.e2e.test_distributed_faults import embedded_run, free_ports, reader, still_running
from tests.polling import until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

DATASET = "alimconfiance"
REDIS_SH = services.REPO_ROOT / "deploy" / "local" / "redis.sh"
SESSION_TIMEOUT_S = 6  # the broker's group.min.session.timeout.ms
MOST_OUTAGE_LINES = 30  # one line and a count per failure kind per 10 s window


async def _true(value: bool) -> bool:
    return value


def notifier_group(deployment: Deployment) -> str:
    return f"{deployment.app_id}-notifier-webhook"


async def group_members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return sum(len(g["members"]) for response in responses for g in response.to_object()["groups"])


async def publish(deployment: Deployment, portal: FakePortal, snapshot: DemoSnapshot, *,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """Publish one snapshot on the portal and run `vigie producer --once` (with `env` over the deployment's); its
    JSON summary, with its stderr under "stderr"."""
    portal.publish(DATASET_ID, snapshot.rows, modified=snapshot.modified)
    url = portal.url_for(DATASET_ID)
    proc = await asyncio.create_subprocess_exec(
        str(VIGIE), "producer", "--once", env={**deployment.env([url]), **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=deployment.workdir)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return {**summary, "stderr": err.decode()}


# -- a notifier paused past its session timeout ------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_a_notifier_paused_past_its_session_timeout_keeps_running_and_delivers_everything(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_run(tmp_path, portal, story, subscriptions)
    deployed = deployment
    # a slow partner (per-destination rate) keeps deliveries flowing for several seconds
    deployed.extra_env |= {"VIGIE_WEBHOOK_RATE": "60", "VIGIE_SESSION_TIMEOUT": str(SESSION_TIMEOUT_S)}
    await deployed.subscribe(subscriptions)
    await deployed.start("streams", "streams", "worker")
    notifier = await deployed.start("notifier", "notifier", "--channel", "webhook")
    await deployed.start("notifier-2", "notifier", "--channel", "webhook")  # takes the paused one's partitions
    for snapshot in (story.first, story.second):
        await publish(deployed, portal, snapshot)
    total = len(expected.alerts)
    await until(lambda: _true(len(receiver.received) >= total // 10), "the first alerts arrive", 90,
                deployed.logs)
    group = notifier_group(deployed)
    notifier.send_signal(signal.SIGSTOP)
    try:
        paused_at = len(receiver.received)
        assert paused_at < total, "the pause must come while deliveries flow"
        await until(lambda: _members(deployed.bootstrap, group, 1), "the paused notifier leaves its group", 60,
                    deployed.logs)
    finally:
        notifier.send_signal(signal.SIGCONT)

    await wait_for_alerts(deployed, receiver, total, timeout=120)
    await deployed.drained(idle_pairs(deployed), deadline_s=60)
    got = received(receiver)
    assert len(got) == len(set(got)) == total, "each alert once at the receiver (by webhook-id)"
    assert set(got) == expected.alerts
    assert receiver.rejected == 0
    still_running(deployed)
    log = (deployed.workdir / "notifier.log").read_text(errors="replace")
    print(f"paused at {paused_at} of {total} alerts; redeliveries absorbed: {receiver.duplicates}; "
          f"commits refused after the rebalance: {log.count('not committed after a rebalance')}")


async def _members(bootstrap: str, group: str, count: int) -> bool:
    return await group_members(bootstrap, group) == count


# -- a Redis restart ---------------------------------------------------------------------------------------


@dataclass
class OwnRedis:
    """A redis-server of the test's own, managed with deploy/local/redis.sh (which stops it by PID)."""

    local_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def run(self, command: str) -> None:
        env = {**os.environ, "VIGIE_LOCAL_DIR": str(self.local_dir), "REDIS_PORT": str(self.port)}
        result = subprocess.run([str(REDIS_SH), command], env=env, capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, f"redis.sh {command} exited {result.returncode}:\n{result.stderr}"


@contextlib.asynccontextmanager
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis-local", free_ports(1)[0])
    try:
        await asyncio.to_thread(server.run, "start")
        yield server
    finally:
        await asyncio.to_thread(server.run, "stop")


async def healthcheck(deployment: Deployment, role: str) -> tuple[int, str]:
    env = {**deployment.env(), "VIGIE_DATA_DIR": str(deployment.workdir / "data" / role)}
    proc = await asyncio.create_subprocess_exec(str(VIGIE), "healthcheck", "--role", role, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                cwd=deployment.workdir)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def folded_view(bootstrap: str, topic: str, redis_url: str, namespace: str) -> dict[bytes, bytes]:
    """The view a fresh fold of every change on `topic` gives (in `namespace`): its records hash."""
    async with reader(bootstrap, [topic]) as read_all:
        messages = (await read_all())[topic]
    changes: list[Change] = []
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        with contextlib.suppress(EnvelopeError):
            changes.append(read(decode(message.value), CHANGE, change_from_dict))
    view = RedisCurrentView(redis_url, dataset=DATASET, namespace=namespace)
    try:
        await view.apply(changes)
    finally:
        await view.aclose()
    return await view_records(redis_url, namespace)


async def view_records(redis_url: str, namespace: str) -> dict[bytes, bytes]:
    redis = Redis.from_url(redis_url)
    try:
        found: dict[Any, Any] = await redis.hgetall(f"{{{namespace}:view:{DATASET}}}:records")
    finally:
        await redis.aclose()
    return found


def outage_lines(log: Path) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if re.search(r"Connection refused|Error \d+ connecting", line))


@pytest.mark.timeout(300)
async def test_a_redis_restart_mid_stream_the_view_resumes_by_itself_and_the_healthcheck_tells(
        kafka_bootstrap: str, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory, tmp_path: Path) -> None:
    redis_url = services.redis_url()
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_run(tmp_path, portal, story, subscriptions)
    async with own_redis(tmp_path) as server:
        deployed = Deployment(kafka_bootstrap, server.url, tmp_path / "deployment",
                              extra_env={"VIGIE_WEBHOOK_RATE": "60"})
        deployed.workdir.mkdir()
        # the producer keeps its source state in the shared Redis: it publishes while ours is down
        producer_env = {"VIGIE_STORE": redis_url}
        view_group, changes = f"{deployed.app_id}-view", f"{deployed.prefix}changes"
        try:
            await deployed.subscribe(subscriptions)
            await deployed.start("streams", "streams", "worker")
            await deployed.start("notifier", "notifier", "--channel", "webhook")
            await publish(deployed, portal, story.first, env=producer_env)
            await deployed.drained([*idle_pairs(deployed), (view_group, changes)], deadline_s=90)

            async def healthy() -> bool:
                return (await healthcheck(deployed, "streams"))[0] == 0

            await until(healthy, "the streams role healthy (its first heartbeat)", 60, deployed.logs, 0.5)

            await asyncio.to_thread(server.run, "stop")
            await publish(deployed, portal, story.second, env=producer_env)
            failing = ""

            async def view_reported() -> bool:
                nonlocal failing
                code, failing = await healthcheck(deployed, "streams")
                return code != 0 and "view: current-state view updater failing" in failing

            await until(view_reported, "the healthcheck names the failing view updater", 90, deployed.logs, 0.5)
            await asyncio.to_thread(server.run, "start")
            await until(healthy, "the streams role healthy again", 120, deployed.logs, 0.5)
            await wait_for_alerts(deployed, receiver, len(expected.alerts), timeout=150)
            await deployed.drained([*idle_pairs(deployed), (view_group, changes)], deadline_s=90)

            got = received(receiver)
            assert len(got) == len(set(got)) == len(expected.alerts), "each alert once (by webhook-id)"
            assert set(got) == expected.alerts
            assert receiver.rejected == 0
            still_running(deployed)
            shown = await view_records(server.url, deployed.namespace)
            assert shown, "the view holds the records"
            assert shown == await folded_view(kafka_bootstrap, changes, server.url, f"check-{deployed.tag}")
            store = RedisSubscriptionStore(server.url, namespace=deployed.namespace)
            try:
                assert {s.id for s in await store.all()} == {s.id for s in subscriptions}, "kept on disk"
            finally:
                await store.aclose()
            for name in ("streams", "notifier"):
                lines = outage_lines(deployed.workdir / f"{name}.log")
                assert lines <= MOST_OUTAGE_LINES, f"{name}: {lines} lines about the Redis outage"
            print(f"healthcheck while Redis was down: {failing.strip()}")
        finally:
            await deployed.stop_all()
            await deployed.cleanup()
            await _forget(redis_url, deployed.namespace)


async def _forget(redis_url: str, namespace: str) -> None:
    """Delete the keys of `namespace` (not those of a namespace it is the prefix of)."""
    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(match=f"*{namespace}[:}}]*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


# -- a Redis that comes back empty -------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_a_redis_that_comes_back_empty_holds_the_deliveries_until_restored(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, story: DemoStory,
        tmp_path: Path) -> None:
    subscriptions = subscriptions_for(receiver)
    expected = await embedded_run(tmp_path, portal, story, subscriptions)
    await deployment.subscribe(subscriptions)
    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier", "notifier", "--channel", "webhook")
    await publish(deployment, portal, story.first)
    await deployment.drained(idle_pairs(deployment))
    await _forget(deployment.redis_url, deployment.namespace)  # what a restart without persistence leaves

    # the producer lost its source state and digests too: it must notice, not take the snapshot for a baseline
    summary = await publish(deployment, portal, story.second)
    assert summary["sources"][0]["baseline"] is False
    assert "Redis lost its data" in summary["stderr"]
    log = deployment.workdir / "notifier.log"
    await until(lambda: _true("the subscription store has lost its data" in log.read_text(errors="replace")),
                "the notifier says the store lost its data", 90, deployment.logs)
    assert await deployment.lag(notifier_group(deployment), f"{deployment.prefix}deliveries.webhook") > 0
    assert receiver.received == [], "nothing sent without the subscriptions' secrets"

    await deployment.subscribe(subscriptions)  # restored (from a backup: the same subscriptions and secrets)
    await wait_for_alerts(deployment, receiver, len(expected.alerts), timeout=120)
    await deployment.drained(idle_pairs(deployment))
    got = received(receiver)
    assert len(got) == len(set(got)) == len(expected.alerts)
    assert set(got) == expected.alerts
    still_running(deployment)
    text = log.read_text(errors="replace")
    assert "delivery dropped" not in text
    assert text.count("the subscription store has lost its data") <= MOST_OUTAGE_LINES, "collapsed"
    assert "vigie subscriptions republish --all" in text
    await assert_structured_cloudevents(deployment)


async def assert_structured_cloudevents(deployment: Deployment) -> None:
    """Every envelope on the main topics says it is a CloudEvent in structured mode (content-type header)."""
    topics = Topics(deployment.prefix)
    names = [topics.records(DATASET), topics.changes, topics.subscriptions, topics.deliveries("webhook")]
    async with reader(deployment.bootstrap, names) as read_all:
        found = await read_all()
    for name in names:
        events = [m for m in found[name] if m.value is not None]
        assert events, f"{name} holds envelopes"
        untyped = [m.offset for m in events if header(m.headers, "content-type") != CONTENT_TYPE]
        assert not untyped, f"{name}: {len(untyped)} of {len(events)} without content-type {CONTENT_TYPE}"
