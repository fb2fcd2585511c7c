"""A chat's burst of alerts goes out merged, grouped by area, at most one message per second per chat (over real
HTTP against the local Telegram Bot API stand-in; the rate limiter on a virtual clock)."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator

import pytest

from notifiers import Channels
from notifiers.ratelimit import RateLimiter
from notifiers.telegram import MAX_MERGED
from notifiers.worker import OutboxWorker
from runtime.demo.telegram_api import FakeTelegramApi
from tests.integration.test_slack_alerts import ListOutbox, Noting, VirtualClock, alert
from tests.unit.core.factories import AT

CHAT = 4242


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramApi]:
    server = FakeTelegramApi()
    await server.start()
    server.known.add(CHAT)
    yield server
    await server.close()


@pytest.fixture
async def channels(api: FakeTelegramApi) -> AsyncIterator[Channels]:
    hub = Channels(telegram_token=api.token, telegram_base_url=api.base_url, timeout=5.0)
    yield hub
    await hub.aclose()


@pytest.mark.parametrize("burst", [1, 25])
async def test_a_burst_to_one_chat_is_merged_by_area_and_paced(channels: Channels, api: FakeTelegramApi,
                                                               burst: int) -> None:
    deliveries = [alert(f"tg://{CHAT}", n, label="Bureau" if n % 3 else "") for n in range(burst)]
    outbox, clock, sent_at = ListOutbox(deliveries), VirtualClock(), list[float]()
    worker = OutboxWorker(outbox, Noting(channels, clock, sent_at), None, lambda: AT,
                          limiter=RateLimiter(monotonic=clock.monotonic, sleep=clock.sleep))

    assert (await worker.drain(limit=500)).delivered == burst
    assert sorted(outbox.done) == sorted(d.key for d in deliveries)
    expected = -(-burst // MAX_MERGED)
    await api.wait_for(lambda a: len(a.to(CHAT)) >= expected, f"{expected} message(s)")
    messages = api.to(CHAT)
    assert len(messages) == expected
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(sent_at))
    text = " ".join(m.text for m in messages)
    assert sorted(set(re.findall(r"Bistro \d\d", text))) == [f"Bistro {n:02d}" for n in range(burst)]
    if burst > 1:
        assert messages[0].text.startswith(f"{MAX_MERGED} alertes Vigie")
        assert "Bureau" in messages[0].text
        assert "Satisfaisant → A améliorer" in messages[0].text
