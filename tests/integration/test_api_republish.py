"""The API role publishes, in the background, the subscription writes a failed publish left behind: real Redis,
a real broker, and publishers pointed at an address where no broker answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from core.codec import decode
from core.errors import PublishError
from core.geo import Everywhere
from core.model import Subscription
from runtime.api import build_app
from runtime.settings import Settings
from runtime.wiring import subscription_store
from subscriptions.publisher import KafkaSubscriptionPublisher
from subscriptions.redis import RedisSubscriptionStore
from tests.contract.conftest import drop_namespace, unique
from tests.polling import until

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

NO_BROKER = "127.0.0.1:9"  # nothing listens on the discard port: every connection is refused


@dataclass
class Deployment:
    """One API deployment's names (Redis namespace, topic prefix) on the shared services."""

    bootstrap: str
    redis_url: str
    workdir: Path
    namespace: str
    prefix: str

    @property
    def topic(self) -> str:
        return f"{self.prefix}subscriptions"

    def settings(self, *, bootstrap: str | None = None, interval_s: float = 0.2) -> Settings:
        return Settings(bus=f"kafka://{bootstrap or self.bootstrap}", store=self.redis_url,
                        state=f"sqlite:///{self.workdir / 'vigie.db'}", namespace=self.namespace,
                        topic_prefix=self.prefix, republish_interval=interval_s)

    def writer(self) -> RedisSubscriptionStore:
        """Another process writing subscriptions while its broker is unreachable."""
        return RedisSubscriptionStore(self.redis_url, namespace=self.namespace,
                                      publisher=KafkaSubscriptionPublisher(NO_BROKER, topic=self.topic, timeout_s=5))

    async def published(self) -> list[tuple[str, dict[str, Any] | None]]:
        """Every message of the deployment's subscriptions topic: (key, envelope data or None for a tombstone)."""
        partitions = [TopicPartition(self.topic, p) for p in await self.partitions()]
        if not partitions:
            return []
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            found: list[tuple[str, dict[str, Any] | None]] = []
            async with asyncio.timeout(30):
                while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                    for records in (await consumer.getmany(timeout_ms=1000)).values():
                        found.extend((r.key.decode(), None if r.value is None else decode(r.value).data)
                                     for r in records)
            return found
        finally:
            await consumer.stop()

    async def partitions(self) -> list[int]:
        """The topic's partitions; none while it does not exist."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            if self.topic not in await admin.list_topics():
                return []
            [described] = await admin.describe_topics([self.topic])
            return sorted(p["partition"] for p in described["partitions"])
        finally:
            await admin.close()


@pytest.fixture
async def deployment(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, redis_url, tmp_path, unique("test-republish"),
                          f"t{uuid.uuid4().hex[:10]}.")
    try:
        yield deployed
    finally:
        await drop_namespace(redis_url, deployed.namespace)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            if deployed.topic in await admin.list_topics():
                await admin.delete_topics([deployed.topic])
        finally:
            await admin.close()


def everywhere(sid: str) -> Subscription:
    return Subscription(sid, Everywhere(), "webhook+https://partner.example/hook", lang="en",
                        secret="whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")


async def test_the_api_publishes_writes_left_pending_by_a_failed_publish(
        deployment: Deployment, caplog: pytest.LogCaptureFixture) -> None:
    writer = deployment.writer()
    try:
        async with TestClient(TestServer(await build_app(deployment.settings()), host="127.0.0.1")) as http:
            for sid in ("sub_first", "sub_second"):  # one after the other: two rounds of the periodic task
                with pytest.raises(PublishError):
                    await writer.put(everywhere(sid))
                assert await writer.pending() == [sid]
                await until(lambda: _empty(writer.pending()), f"the API publishes {sid}", 30.0, every_s=0.05)
            assert (await http.get("/v1/subscriptions/sub_second")).status == 200
    finally:
        await writer.aclose()

    published = await deployment.published()  # the topic has the deployment's partitions: no order across keys
    assert sorted(key for key, _ in published) == ["sub_first", "sub_second"]
    data = dict(published)["sub_second"]
    assert data is not None
    assert (data["id"], data["secret"]) == ("sub_second", None)
    messages = [r.getMessage() for r in caplog.records if r.name == "runtime.republish"]
    assert "published 1 pending subscription write(s): sub_first" in messages
    assert "published 1 pending subscription write(s): sub_second" in messages


async def test_writes_while_the_broker_is_unreachable_are_accepted_then_published(deployment: Deployment) -> None:
    down = deployment.settings(bootstrap=NO_BROKER, interval_s=3600)
    async with TestClient(TestServer(await build_app(down), host="127.0.0.1")) as http:
        made = await http.post("/v1/subscriptions", json={"to": "console://", "everywhere": True})
        assert made.status == 202, await made.text()
        kept = (await made.json())["id"]
        doomed = (await (await http.post("/v1/subscriptions", json={"to": "console://", "departement": "69"})).json())
        assert (await http.delete(f"/v1/subscriptions/{doomed['id']}")).status == 202
        assert (await http.delete(f"/v1/subscriptions/{doomed['id']}")).status == 404
        assert (await http.get(f"/v1/subscriptions/{kept}")).status == 200
    assert await deployment.published() == []

    async with TestClient(TestServer(await build_app(deployment.settings()), host="127.0.0.1")):
        store = RedisSubscriptionStore(deployment.redis_url, namespace=deployment.namespace)
        try:
            await until(lambda: _empty(store.pending()), "the API publishes what the outage left pending", 30.0,
                        every_s=0.05)
        finally:
            await store.aclose()
    assert sorted((key, data is None) for key, data in await deployment.published()) == sorted(
        [(kept, False), (doomed["id"], True)])


async def test_shutdown_stops_the_periodic_task(deployment: Deployment) -> None:
    app = await build_app(deployment.settings(interval_s=3600))
    async with TestClient(TestServer(app, host="127.0.0.1")):
        assert [t for t in asyncio.all_tasks() if t.get_name() == "republish-subscriptions"]
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "republish-subscriptions"]


async def _empty(pending: Awaitable[list[str]]) -> bool:
    return not await pending


async def test_the_api_creates_the_subscriptions_topic_with_the_deployment_partitions(deployment: Deployment) -> None:
    """The API may be the first role to start: the topic it creates has `VIGIE_PARTITIONS`, as the workers'."""
    settings = deployment.settings().model_copy(update={"partitions": 3})
    store = subscription_store(settings)
    try:
        await store.put(everywhere("s1"))
    finally:
        await store.aclose()
    assert await deployment.partitions() == [0, 1, 2]
