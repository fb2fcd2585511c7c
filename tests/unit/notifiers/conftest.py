"""Local stand-ins (fake Slack Web API, webhook receiver) on 127.0.0.1, one per test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

try:
    import tests  # noqa: F401
except ModuleNotFoundError:  # pytest run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from runtime.demo.receiver import WebhookReceiver
from runtime.demo.slack_api import FakeSlackApi


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    server = FakeSlackApi()
    await server.start()
    yield server
    await server.close()
