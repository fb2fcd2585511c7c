"""OutboxWorker over an in-memory outbox, delivering for real to the webhook receiver and the fake Slack API."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from core.model import Delivery
from notifiers import Channels, new_secret
from notifiers.ratelimit import Rate, RateLimiter
from notifiers.worker import DrainResult, OutboxWorker, RetryPolicy, Sender
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi
from tests.unit.notifiers.support import LOCAL_RECEIVERS, T0, Clock, MemoryOutbox, delivery

SECRET = new_secret()
SECOND = timedelta(seconds=1)
NO_LIMITS = RateLimiter({})


@pytest.fixture
async def channels(slack_api: FakeSlackApi) -> AsyncIterator[Channels]:
    hub = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=slack_api.base_url, console_stream=io.StringIO(),
                   timeout=5.0, webhook_guard=LOCAL_RECEIVERS)
    yield hub
    await hub.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox() -> MemoryOutbox:
    return MemoryOutbox()


WorkerFactory = Callable[..., OutboxWorker]


@pytest.fixture
def make_worker(outbox: MemoryOutbox, channels: Channels, clock: Clock) -> WorkerFactory:
    def make(policy: RetryPolicy | None = None, *, concurrency: int = 8, limiter: RateLimiter = NO_LIMITS,
             sender: Sender | None = None) -> OutboxWorker:
        return OutboxWorker(outbox, sender or channels, policy or RetryPolicy(), clock, concurrency=concurrency,
                            limiter=limiter, rng=lambda: 0.5)
    return make


def hooks(receiver: WebhookReceiver, sub_id: str, *keys: str) -> list[Delivery]:
    url = receiver.add_endpoint(sub_id, SECRET)
    return [delivery(f"webhook+{url}", sub_id=sub_id, key=key, secret=SECRET) for key in keys]


async def test_nothing_due_drains_nothing(make_worker: WorkerFactory) -> None:
    assert await make_worker().drain() == DrainResult(0, 0, 0)


async def test_retries_then_succeeds(make_worker: WorkerFactory, outbox: MemoryOutbox, clock: Clock,
                                     receiver: WebhookReceiver) -> None:
    [d] = hooks(receiver, "sub-1", "insp-1")
    outbox.add(d)
    receiver.fail_next(503, times=2)
    worker = make_worker()
    assert await worker.drain() == DrainResult(0, 1, 0)
    assert (outbox[d.key].attempts, outbox[d.key].next_at) == (1, clock.now + 1 * SECOND)
    assert "503" in (outbox[d.key].reason or "")
    assert await worker.drain() == DrainResult(0, 0, 0)  # not due yet
    clock.advance(1)
    assert await worker.drain() == DrainResult(0, 1, 0)
    assert (outbox[d.key].attempts, outbox[d.key].next_at) == (2, clock.now + 2 * SECOND)
    clock.advance(2)
    assert await worker.drain() == DrainResult(1, 0, 0)
    assert (outbox[d.key].status, outbox[d.key].delivered_at) == ("delivered", clock.now)
    assert [e.webhook_id for e in receiver.received] == [d.key]
    assert (receiver.requests, receiver.duplicates) == (3, 0)


async def test_retry_after_is_honoured(make_worker: WorkerFactory, outbox: MemoryOutbox, clock: Clock,
                                       receiver: WebhookReceiver, slack_api: FakeSlackApi) -> None:
    [hook] = hooks(receiver, "sub-1", "insp-1")
    post = delivery("slack://C0VIGIE01", sub_id="sub-2")
    outbox.add(hook, post)
    receiver.fail_next(429, retry_after=90)
    slack_api.rate_limit_next(retry_after=30)
    assert await make_worker().drain() == DrainResult(0, 2, 0)
    assert outbox[hook.key].next_at == T0 + 90 * SECOND
    assert outbox[post.key].next_at == T0 + 30 * SECOND


async def test_dead_after_max_attempts(make_worker: WorkerFactory, outbox: MemoryOutbox, clock: Clock,
                                       receiver: WebhookReceiver) -> None:
    [d] = hooks(receiver, "sub-1", "insp-1")
    outbox.add(d)
    receiver.fail_next(500, times=10)
    worker = make_worker(RetryPolicy(max_attempts=3))
    results = []
    for _ in range(3):
        results.append(await worker.drain())
        clock.advance(3600)
    assert results == [DrainResult(0, 1, 0), DrainResult(0, 1, 0), DrainResult(0, 0, 1)]
    assert (outbox[d.key].status, outbox[d.key].attempts) == ("dead", 3)
    assert await worker.drain() == DrainResult(0, 0, 0)
    assert receiver.requests == 3


@pytest.mark.parametrize(("status", "reason"), [(400, "refused the event with 400"), (410, "endpoint is gone")])
async def test_not_retriable_is_dead_at_once(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                             receiver: WebhookReceiver, status: int, reason: str) -> None:
    [d] = hooks(receiver, "sub-1", "insp-1")
    outbox.add(d)
    receiver.fail_next(status)
    assert await make_worker().drain() == DrainResult(0, 0, 1)
    assert (outbox[d.key].status, outbox[d.key].attempts) == ("dead", 1)
    assert reason in (outbox[d.key].reason or "")


async def test_order_per_subscription_survives_a_failure(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                                         clock: Clock, receiver: WebhookReceiver) -> None:
    first, second, third = hooks(receiver, "sub-a", "insp-1", "insp-2", "insp-3")
    [other] = hooks(receiver, "sub-b", "insp-1")
    outbox.add(first, second, third, other)
    receiver.fail_next(503, endpoint="sub-a")
    worker = make_worker()
    assert await worker.drain() == DrainResult(1, 1, 0)  # sub-b delivered; sub-a stopped at its first
    assert [e.endpoint for e in receiver.received] == ["sub-b"]
    assert [outbox[d.key].status for d in (second, third)] == ["pending", "pending"]
    assert await worker.drain() == DrainResult(0, 0, 0)  # held behind the retry, not sent out of order
    clock.advance(1)
    assert await worker.drain() == DrainResult(3, 0, 0)
    assert [e.webhook_id for e in receiver.received if e.endpoint == "sub-a"] == [first.key, second.key, third.key]


async def test_one_subscription_is_sent_one_at_a_time(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                                      receiver: WebhookReceiver) -> None:
    deliveries = hooks(receiver, "sub-a", "insp-1", "insp-2", "insp-3")
    outbox.add(*deliveries)
    receiver.pause()
    drain = asyncio.create_task(make_worker(concurrency=8).drain())
    await receiver.wait_in_flight(1)
    receiver.resume()
    assert await drain == DrainResult(3, 0, 0)
    assert receiver.max_in_flight == 1
    assert [e.webhook_id for e in receiver.received] == [d.key for d in deliveries]


async def test_subscriptions_are_served_in_parallel(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                                    receiver: WebhookReceiver) -> None:
    for sub in ("sub-a", "sub-b", "sub-c"):
        outbox.add(*hooks(receiver, sub, "insp-1", "insp-2"))
    receiver.pause()
    drain = asyncio.create_task(make_worker(concurrency=3).drain())
    await receiver.wait_in_flight(3)  # would time out if subscriptions were served one after another
    receiver.resume()
    assert await drain == DrainResult(6, 0, 0)


async def test_concurrency_is_bounded(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                      receiver: WebhookReceiver) -> None:
    for sub in ("sub-a", "sub-b", "sub-c", "sub-d"):
        outbox.add(*hooks(receiver, sub, "insp-1"))
    receiver.pause()
    drain = asyncio.create_task(make_worker(concurrency=2).drain())
    await receiver.wait_in_flight(2)
    receiver.resume()
    assert await drain == DrainResult(4, 0, 0)
    assert receiver.max_in_flight == 2


class Broken:
    async def send(self, delivery: Delivery) -> None:
        raise RuntimeError("bug in a channel")


async def test_unexpected_errors_are_retried_and_logged_with_traceback(
        make_worker: WorkerFactory, outbox: MemoryOutbox, caplog: pytest.LogCaptureFixture) -> None:
    d = delivery("webhook+https://partner.example/h?token=s3cr3t", secret=SECRET)
    outbox.add(d)
    with caplog.at_level(logging.INFO, logger="notifiers.worker"):
        assert await make_worker(sender=Broken()).drain() == DrainResult(0, 1, 0)
    assert (outbox[d.key].attempts, outbox[d.key].reason) == (1, "RuntimeError: bug in a channel")
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.exc_info is not None
    assert error.getMessage() == f"unexpected error delivering {d.key} to webhook+https://partner.example/h?token=***"
    bound = {k: getattr(error, k) for k in ("subscription_id", "change_id", "channel", "delivery_key")}
    assert bound == {"subscription_id": "sub-1", "change_id": d.change.id, "channel": "webhook", "delivery_key": d.key}
    assert "s3cr3t" not in caplog.text


async def test_rate_limit_delays_and_never_drops(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                                 slack_api: FakeSlackApi) -> None:
    waited: list[float] = []

    async def record(seconds: float) -> None:
        waited.append(seconds)

    limiter = RateLimiter({"slack": Rate(1.0)}, monotonic=lambda: 0.0, sleep=record)
    outbox.add(*(delivery("slack://C0VIGIE01", key=f"insp-{n}") for n in range(3)))
    worker = make_worker(limiter=limiter)
    assert await worker.drain() == DrainResult(3, 0, 0)  # what is due for one channel goes as one message
    assert waited == []
    outbox.add(*(delivery("slack://C0VIGIE01", key=f"late-{n}") for n in range(2)))
    assert await worker.drain() == DrainResult(2, 0, 0)
    assert waited == [1.0]  # the next message waits for the channel's next slot
    assert [m.blocks[0]["text"]["text"] for m in await slack_api.wait_for(2)] == ["3 alertes Vigie", "2 alertes Vigie"]


async def test_limit_bounds_one_round(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                      receiver: WebhookReceiver) -> None:
    outbox.add(*hooks(receiver, "sub-a", *(f"insp-{n}" for n in range(5))))
    worker = make_worker()
    assert await worker.drain(limit=2) == DrainResult(2, 0, 0)
    assert await worker.drain(limit=10) == DrainResult(3, 0, 0)


async def test_a_drained_batch_is_marked_delivered_in_one_write(make_worker: WorkerFactory, outbox: MemoryOutbox,
                                                                clock: Clock, receiver: WebhookReceiver) -> None:
    deliveries = [*hooks(receiver, "sub-a", "insp-1", "insp-2"), *hooks(receiver, "sub-b", "insp-1", "insp-2")]
    outbox.add(*deliveries)
    assert await make_worker().drain() == DrainResult(4, 0, 0)
    [write] = outbox.delivered_writes
    assert sorted(write) == sorted(d.key for d in deliveries)
    assert {(outbox[d.key].status, outbox[d.key].delivered_at) for d in deliveries} == {("delivered", clock.now)}


async def test_a_failure_in_the_middle_of_a_batch_is_retried_and_the_others_are_delivered(
        make_worker: WorkerFactory, outbox: MemoryOutbox, clock: Clock, receiver: WebhookReceiver) -> None:
    a1, a2 = hooks(receiver, "sub-a", "insp-1", "insp-2")
    b1, b2 = hooks(receiver, "sub-b", "insp-1", "insp-2")
    [c1] = hooks(receiver, "sub-c", "insp-1")
    outbox.add(a1, b1, c1, b2, a2)
    receiver.fail_next(503, endpoint="sub-b")
    worker = make_worker()
    assert await worker.drain() == DrainResult(3, 1, 0)
    [write] = outbox.delivered_writes
    assert sorted(write) == sorted(d.key for d in (a1, a2, c1))
    assert [(outbox[d.key].status, outbox[d.key].attempts) for d in (b1, b2)] == [("pending", 1), ("pending", 0)]
    assert await worker.drain() == DrainResult(0, 0, 0)  # b2 waits behind b1's retry
    clock.advance(1)
    assert await worker.drain() == DrainResult(2, 0, 0)
    assert outbox.delivered_writes[1] == [b1.key, b2.key]
    assert [e.webhook_id for e in receiver.received if e.endpoint == "sub-b"] == [b1.key, b2.key]


class Stalled:
    """Sends through `channels`, except `key`, which never gets an answer."""

    def __init__(self, channels: Channels, key: str) -> None:
        self.channels, self.key, self.reached = channels, key, asyncio.Event()

    async def send(self, delivery: Delivery) -> None:
        if delivery.key == self.key:
            self.reached.set()
            await asyncio.Event().wait()
        await self.channels.send(delivery)


async def test_a_cancelled_drain_marks_what_went_out(outbox: MemoryOutbox, channels: Channels, clock: Clock,
                                                    receiver: WebhookReceiver) -> None:
    [a1] = hooks(receiver, "sub-a", "insp-1")
    [b1] = hooks(receiver, "sub-b", "insp-1")
    outbox.add(b1, a1)
    sender, told = Stalled(channels, b1.key), asyncio.Event()
    worker = OutboxWorker(outbox, sender, RetryPolicy(), clock, limiter=NO_LIMITS, observe=lambda _, __: told.set())
    drain = asyncio.create_task(worker.drain())
    await sender.reached.wait()
    await told.wait()  # a1 went out and the worker knows it
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    assert (outbox[a1.key].status, outbox[b1.key].status) == ("delivered", "pending")
