"""Both runtimes behind one surface, for the webhook lifecycle tests: the REST API over a real socket, a receiver
over a real socket, and deliveries queued the way each runtime queues them.

    embedded     `Embedded` (the SQLite outbox and its worker, as `vigie run` wires them) on a fake clock;
                 `run()` drains what is due
    distributed  `vigie notifier --channel webhook` as a process on the real broker and Redis (tests/e2e
                 Deployment); deliveries produced to `deliveries.webhook`; `run()` has nothing to do

The receiver keeps every request's raw body and headers, answers what the test queued (`answer`), and lets the
test verify each request with whichever secret it likes.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.model import Delivery, Subscription
from core.stamps import stamp
from core.topology import Topics
from runtime.api import build_app
from runtime.distributed import DistributedSettings, topic_specs
from runtime.embedded import Embedded
from runtime.settings import Settings
from runtime.wiring import subscription_store
from streams.bus.kafka import delivery_message, ensure_topics
from streams.sqlite import Commit, SourceState
from tests import services
from tests.e2e.test_distributed import PARTITIONS, VIGIE, Deployment
from tests.integration.test_slack_alerts import alert

Client = TestClient[Any, Any]
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Request:
    body: bytes
    headers: dict[str, str]

    def verifies(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


@dataclass
class RawReceiver:
    """Keeps every POST to /hooks/{name}; answers 200 unless `answer` queued something else."""

    requests: list[Request] = field(default_factory=list)
    answers: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _runner: web.AppRunner | None = None
    base: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str) -> str:
        return f"webhook+http://{self.base}/hooks/{name}"

    def answer(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        self.answers.extend([(status, headers or {})] * times)

    async def wait_for(self, n: int, timeout: float = 30.0) -> list[Request]:  # noqa: ASYNC109 - a deadline
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= n)
        return self.requests[:n]

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(Request(await request.read(), dict(request.headers)))
        status, headers = self.answers.popleft() if self.answers else (200, {})
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=status, headers=headers)


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Rig(Protocol):
    name: str
    api: Client
    settings: Settings

    async def queue(self, deliveries: list[Delivery]) -> None: ...

    async def run(self) -> None: ...

    async def later(self, seconds: float) -> None:
        """Let `seconds` pass for the runtime's retries (a fake clock, or a real wait on tiny schedules)."""
        ...

    async def caught_up(self) -> None:
        """Bring the runtime's clock up to real time and run: what the API or the CLI queued (a replay) is due at
        real time, which a fake clock started earlier has not reached."""
        ...

    async def settled(self) -> None:
        """Until the runtime has dealt with everything queued and due (sent, retried, dropped)."""
        ...

    def env(self) -> dict[str, str]:
        """The environment a `vigie` command needs to work on this runtime's stores."""
        ...


async def subscribe(rig: Rig, to: str, **fields: Any) -> dict[str, Any]:
    response = await rig.api.post("/v1/subscriptions", json={"to": to, "everywhere": True, **fields})
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def stored(rig: Rig, sid: str) -> Subscription | None:
    store = subscription_store(rig.settings)
    try:
        return await store.get(sid)
    finally:
        await store.aclose()


async def put(rig: Rig, subscription: Subscription) -> None:
    store = subscription_store(rig.settings)
    try:
        await store.put(subscription)
    finally:
        await store.aclose()


async def alerts(rig: Rig, sid: str, first: int, count: int = 1) -> list[Delivery]:
    """`count` new alerts for subscription `sid`, queued in the runtime."""
    subscription = await stored(rig, sid)
    assert subscription is not None
    made = [Delivery.of(replace(alert("console://", n).change, id=f"{sid}-{n}"), subscription)
            for n in range(first, first + count)]
    await rig.queue(made)
    return made


@dataclass
class EmbeddedRig:
    name: str
    api: Client
    settings: Settings
    vigie: Embedded
    clock: FakeClock

    async def queue(self, deliveries: list[Delivery]) -> None:
        health = SourceState("src", "v1", True, None, stamp(self.clock()), 0)
        await self.vigie.state.commit(Commit("src", [], [], [], deliveries, [], health), now=self.clock())

    async def run(self) -> None:
        await self.vigie.deliver()

    async def later(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.run()

    async def caught_up(self) -> None:
        self.clock.now = max(self.clock.now, datetime.now(UTC))
        await self.run()

    async def settled(self) -> None:
        await self.run()

    def env(self) -> dict[str, str]:
        return {**os.environ, "VIGIE_STATE": self.settings.state}


@dataclass
class DistributedRig:
    name: str
    api: Client
    settings: Settings
    deployment: Deployment

    async def queue(self, deliveries: list[Delivery]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.deployment.bootstrap)
        await producer.start()
        try:
            for delivery in deliveries:
                message = delivery_message(Topics(self.deployment.prefix), delivery)
                await producer.send_and_wait(message.topic, message.value, key=message.key,
                                             headers=list(message.headers))
        finally:
            await producer.stop()

    async def run(self) -> None:
        return None

    async def later(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # the notifier's own clock: schedules in these tests are tenths of seconds

    async def caught_up(self) -> None:
        return None  # the notifier runs on real time

    async def settled(self) -> None:
        group, topics = f"{self.deployment.app_id}-notifier-webhook", Topics(self.deployment.prefix)
        await self.deployment.drained([(group, topics.deliveries("webhook")),
                                       (f"{group}-retry", topics.retry("webhook"))])

    def env(self) -> dict[str, str]:
        return self.deployment.env()


async def api_client(settings: Settings) -> Client:
    client = TestClient(TestServer(await build_app(settings), host="127.0.0.1"))
    await client.start_server()
    client.session.headers["Authorization"] = f"Bearer {OPERATOR}"
    return client


@dataclass(frozen=True, slots=True)
class Options:
    schedule: str = "0,0.2,0.2"
    disable_after: float = 86_400.0
    overlap: float = 86_400.0


async def embedded_rig(tmp_path: Path, options: Options) -> AsyncIterator[Rig]:
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", api_token=OPERATOR,
                        retry_schedule=options.schedule, disable_after=options.disable_after,
                        webhook_secret_overlap=options.overlap)
    clock = FakeClock()
    async with Embedded(settings, clock=clock) as vigie:
        api = await api_client(settings)
        try:
            yield EmbeddedRig("embedded", api, settings, vigie, clock)
        finally:
            await api.close()


async def distributed_rig(deployment: Deployment, options: Options) -> AsyncIterator[Rig]:
    deployment.extra_env |= {"VIGIE_RETRY_SCHEDULE": options.schedule,
                             "VIGIE_DISABLE_AFTER": str(options.disable_after),
                             "VIGIE_WEBHOOK_SECRET_OVERLAP": str(options.overlap)}
    settings = DistributedSettings(store=deployment.redis_url, namespace=deployment.namespace, api_token=OPERATOR,
                                   bus=f"kafka://{deployment.bootstrap}", webhook_secret_overlap=options.overlap,
                                   topic_prefix=deployment.prefix, datasets=["alimconfiance"], partitions=PARTITIONS)
    await ensure_topics(deployment.bootstrap, topic_specs(settings))
    await deployment.start("notifier", "notifier", "--channel", "webhook")
    api = await api_client(settings)
    try:
        yield DistributedRig("distributed", api, settings, deployment)
    finally:
        await api.close()


async def rig_for(kind: str, tmp_path: Path, options: Options) -> AsyncIterator[Rig]:
    """The embedded rig, or the distributed one on the test services (its topics and keys removed after)."""
    if kind == "embedded":
        async for made in embedded_rig(tmp_path, options):
            yield made
        return
    deployment = Deployment(services.kafka_bootstrap_servers(), services.redis_url(), tmp_path)
    try:
        async for made in distributed_rig(deployment, options):
            yield made
    finally:
        await deployment.stop_all()
        await deployment.cleanup()


RUNTIMES = ["embedded", pytest.param("distributed", marks=[pytest.mark.kafka, pytest.mark.redis])]


async def vigie(rig: Rig, *args: str) -> str:
    """Run `vigie *args` on the rig's stores; its standard output (exit status 0 expected)."""
    proc = await asyncio.create_subprocess_exec(str(VIGIE), *args, env=rig.env(), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()
