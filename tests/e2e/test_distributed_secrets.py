"""No secret on the bus: after a real run, every message of every topic of the deployment is free of them.

Same harness as tests/e2e/test_distributed.py. One webhook subscription with a Standard Webhooks signing secret
(`whsec_` + base64) and one `slack://xoxb-…@C…` subscription whose bot token only the local Slack stand-in
knows. The two demo publications go through `vigie producer --once`, `vigie streams worker` and the webhook and
Slack notifiers until alerts reached both channels; then every topic of the deployment's prefix and every topic of
its faust app (changelogs, leader topic) is read from the beginning, and no key, value or header may hold the
token, the secret, or the secret's base64 part.
"""


from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from core.geo import Circle, Everywhere, Point
from core.model import Filter, Subscription
from notifiers.webhook import SECRET_PREFIX, new_secret
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.slack_api import FakeSlackApi
from runtime.demo.snapshots import DemoStory
from tests.e2e.test_distributed import (
    Deployment,
    publish_story,
    wait_for_alerts,
)
from tests.polling import until

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

SLACK_CHANNEL = "C0VIGIE01"
Leak = tuple[str, int, int, str, str]  # topic, partition, offset, where (key, value, header name), which secret


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackApi]:
    """The Slack stand-in, knowing one fresh bot token (a secret of this test only)."""
    token = f"xoxb-{uuid.uuid4().hex}-{uuid.uuid4().hex[:12]}"
    api = FakeSlackApi(tokens={token}, channels={SLACK_CHANNEL: "vigie-alerts"})
    await api.start()
    yield api
    await api.close()


async def our_partitions(deployment: Deployment) -> list[TopicPartition]:
    """Every partition of every topic of the deployment: its prefix's, and its faust app's."""
    admin = AIOKafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith((deployment.prefix, deployment.app_id))]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return sorted(TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"])


async def scan(bootstrap: str, partitions: list[TopicPartition], needles: dict[str, bytes]) -> tuple[int, list[Leak]]:
    """Read `partitions` from the beginning to their current end; how many messages, and where a needle occurs."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        count, leaks, remaining = 0, [], {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                for r in records:
                    count += 1
                    parts = [("key", r.key or b""), ("value", r.value or b"")]
                    parts += [(f"header {name}", value or b"") for name, value in r.headers]
                    leaks += [(tp.topic, tp.partition, r.offset, where, which)
                              for where, raw in parts for which, needle in needles.items() if needle in raw]
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return count, leaks
    finally:
        await consumer.stop()


async def test_no_secret_on_any_topic_after_a_run(
        deployment: Deployment, portal: FakePortal, receiver: WebhookReceiver, slack: FakeSlackApi,
        story: DemoStory) -> None:
    (slack_token,) = slack.tokens
    secret = new_secret()
    endpoint = receiver.add_endpoint("sub_hook", secret).replace("http://", "webhook+http://", 1)
    await deployment.subscribe([
        Subscription("sub_hook", Circle(Point(48.8566, 2.3522), 5_000), endpoint, lang="en", secret=secret),
        Subscription("sub_slack", Everywhere(), f"slack://{slack_token}@{SLACK_CHANNEL}",
                     Filter(kinds=frozenset({"downgrade", "upgrade", "removed"}))),
    ])
    deployment.extra_env["VIGIE_SLACK_API_URL"] = slack.base_url
    await deployment.start("streams", "streams", "worker")
    await deployment.start("notifier-webhook", "notifier", "--channel", "webhook")
    await deployment.start("notifier-slack", "notifier", "--channel", "slack")

    await publish_story(deployment, portal, story)
    await wait_for_alerts(deployment, receiver, 1)
    await until(lambda: _at_least(len(slack.messages), 1), "a Slack alert arrives", deadline_s=90,
                logs=deployment.logs)
    assert {m.token for m in slack.messages} == {slack_token}
    assert receiver.rejected == 0

    partitions = await our_partitions(deployment)
    topics = sorted({tp.topic for tp in partitions})
    assert f"{deployment.prefix}deliveries.slack" in topics
    assert f"{deployment.prefix}subscriptions" in topics
    assert any(t.endswith("-changelog") for t in topics), f"no faust changelog among {topics}"
    needles = {"slack token": slack_token.encode(), "slack token body": slack_token.removeprefix("xoxb-").encode(),
               "webhook secret": secret.encode(), "webhook secret key": secret.removeprefix(SECRET_PREFIX).encode()}
    count, leaks = await scan(deployment.bootstrap, partitions, needles)
    assert count > 1000, f"only {count} messages on {topics}"
    assert leaks == [], f"secrets on the bus: {leaks[:20]}"


async def _at_least(value: int, floor: int) -> bool:
    return value >= floor
