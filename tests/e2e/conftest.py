"""The distributed end-to-end harness's fixtures (tests/e2e/test_distributed.py has the `Deployment` they build):
real Kafka and Redis (skipped locally, failed in CI when missing), an isolated deployment per test, the local
webhook receiver and Opendatasoft portal, and the demo's two real publications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DemoStory, build_snapshots
from tests.e2e.test_distributed import Deployment


@pytest.fixture(scope="session")
def story() -> DemoStory:
    return build_snapshots()


@pytest.fixture
async def deployment(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    deployed = Deployment(kafka_bootstrap, redis_url, tmp_path)
    try:
        yield deployed
    finally:
        await deployed.stop_all()
        await deployed.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    await hooks.start()
    yield hooks
    await hooks.close()


@pytest.fixture
async def portal() -> AsyncIterator[FakePortal]:
    async with FakePortal() as running:
        yield running
