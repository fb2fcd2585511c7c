"""Slack alerts over real HTTP against the local Slack stand-in: Block Kit content, incoming webhooks, a burst
merged to at most one message per second per channel, and destinations that are gone for good."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime

import pytest

from core.errors import DeliveryError, DestinationGone
from core.geo import Circle, Point
from core.model import Delivery, Subscription
from notifiers import Channels, mask
from notifiers.ratelimit import RateLimiter
from notifiers.worker import OutboxWorker
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi, SlackMessage
from tests.unit.core.factories import AT, inspection, updated

OFFICE = Point(48.8600, 2.3500)


def alert(destination: str, n: int = 0, *, lang: str = "fr", label: str = "") -> Delivery:
    before = inspection(f"k{n}", entity=f"e{n}", rating=2, name=f"Bistro {n:02d}", siret=f"1234567890{n:04d}")
    after = inspection(f"k{n}", entity=f"e{n}", rating=3, name=f"Bistro {n:02d}", siret=f"1234567890{n:04d}",
                       date="2025-06-20")
    change = replace(updated(before, after), source_version="2025-06-30T06:15:00+00:00|70000")
    sub = Subscription(f"s{n % 2}", Circle(OFFICE, 2000), destination, lang=lang, label=label)
    return Delivery.of(change, sub)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackApi]:
    api = FakeSlackApi(channels={"C0VIGIE01": "vigie-alerts", "C0ARCHIVE": "old"}, archived={"C0ARCHIVE"})
    await api.start()
    yield api
    await api.close()


@pytest.fixture
async def refused() -> list[tuple[str, str]]:
    return []


@pytest.fixture
async def channels(slack: FakeSlackApi, refused: list[tuple[str, str]]) -> AsyncIterator[Channels]:
    async def on_refused(destination: str, reason: str) -> None:
        refused.append((destination, reason))

    hub = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=slack.base_url, timeout=5.0, on_refused=on_refused)
    yield hub
    await hub.aclose()


def text_of(message: SlackMessage) -> str:
    return str(message.blocks)


async def test_block_kit_alert_says_what_where_how_far_and_how_fresh(channels: Channels,
                                                                    slack: FakeSlackApi) -> None:
    await channels.send(alert("slack://C0VIGIE01"))
    [message] = await slack.wait_for(1)
    header, section, context = message.blocks
    assert header["text"]["text"] == "Note en baisse : Bistro 00"
    facts = section["text"]["text"]
    for expected in (":large_orange_circle: A améliorer *Bistro 00*", "1 rue de Rivoli, 75001 Paris", "Restaurant",
                     "Contrôlé le 2025-06-20", "*Satisfaisant → A améliorer*", "m du point suivi"):
        assert expected in facts
    assert re.search(r"\n\d[\d\u202f]* m du point suivi", facts)
    assert section["accessory"]["url"].endswith("?q=12345678900000")
    assert context["elements"][0]["text"] == (
        "Données 2025-06-30T06:15:00+00:00|70000 · relevées le 2025-06-30 08:15Z · 2 h après publication")
    assert message.text.startswith("Note en baisse : Bistro 00\n1 rue de Rivoli")


async def test_incoming_webhook_posts_block_kit_and_masks_its_secret(channels: Channels,
                                                                      slack: FakeSlackApi) -> None:
    hook = slack.add_hook("C0VIGIE01", secret="s3cr3tH00kPathValue")
    await channels.send(alert(hook, lang="en"))
    [message] = await slack.wait_for(1)
    assert (message.channel, message.token) == ("C0VIGIE01", "hook:s3cr3tH00kPathValue")
    assert message.blocks[0]["text"]["text"] == "Rating downgraded: Bistro 00"
    assert "s3cr3t" not in mask(hook)
    assert mask(hook).endswith("/services/T0VIGIE/B0HOOK001/***")


@pytest.mark.parametrize(("make", "code"), [
    (lambda api: "slack://C0NOWHERE", "channel_not_found"),
    (lambda api: "slack://C0ARCHIVE", "is_archived"),
    (lambda api: "slack://xoxb-revoked@C0VIGIE01", "invalid_auth"),
    (lambda api: api.add_hook("C0ARCHIVE"), "channel_is_archived"),
    (lambda api: api.root_url.replace("http", "slack+http") + "/services/T0/B0/unknownhook", "no_service"),
])
async def test_gone_destinations_are_reported_for_disabling(channels: Channels, slack: FakeSlackApi,
                                                           refused: list[tuple[str, str]], make: object,
                                                           code: str) -> None:
    destination = make(slack)  # type: ignore[operator]
    with pytest.raises(DestinationGone, match=f"slack {code}: ") as raised:
        await channels.send(alert(destination))
    assert raised.value.retriable is False
    assert refused == [(destination, str(raised.value))]
    assert slack.messages == []


async def test_a_revoked_incoming_webhook_is_gone(channels: Channels, slack: FakeSlackApi) -> None:
    hook = slack.add_hook("C0VIGIE01")
    slack.revoke_hook(hook)
    with pytest.raises(DestinationGone, match="slack invalid_token: the incoming webhook was revoked"):
        await channels.send(alert(hook))


async def test_not_in_channel_fails_without_disabling(channels: Channels, slack: FakeSlackApi,
                                                      refused: list[tuple[str, str]]) -> None:
    slack.not_member.add("C0VIGIE01")
    with pytest.raises(DeliveryError, match="not_in_channel") as raised:
        await channels.send(alert("slack://C0VIGIE01"))
    assert not isinstance(raised.value, DestinationGone)
    assert refused == []


class ListOutbox:
    """core.ports.Outbox in a list: everything due at once, in order."""

    def __init__(self, deliveries: Sequence[Delivery]) -> None:
        self.pending_ = [(d, 0) for d in deliveries]
        self.done: list[str] = []
        self.failures: list[tuple[str, str]] = []

    async def pending(self, limit: int, now: datetime) -> list[tuple[Delivery, int]]:
        gone = set(self.done) | {key for key, _ in self.failures}
        return [(d, a) for d, a in self.pending_ if d.key not in gone][:limit]

    async def delivered_many(self, sent: Sequence[tuple[str, datetime]]) -> None:
        self.done.extend(key for key, _ in sent)

    async def failed(self, key: str, attempts: int, reason: str, retry_at: datetime | None) -> None:
        self.failures.append((key, reason))

    async def dropped(self, key: str, reason: str) -> None:
        self.failures.append((key, reason))

    async def hold(self, key: str, until: datetime) -> None:
        raise AssertionError(f"{key} held until {until}: these subscriptions have no digest nor quiet hours")


class VirtualClock:
    """The rate limiter's monotonic clock and sleep: sleeping moves time on, nothing waits for real."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Noting:
    """Channels, noting the virtual time of every merged send."""

    def __init__(self, channels: Channels, clock: VirtualClock, sent_at: list[float]) -> None:
        self._channels, self._clock, self.sent_at = channels, clock, sent_at

    async def send(self, delivery: Delivery) -> None:
        await self.send_merged([delivery])

    def merge_limit(self, channel: str) -> int:
        return self._channels.merge_limit(channel)

    async def send_merged(self, deliveries: Sequence[Delivery]) -> None:
        self.sent_at.append(self._clock.now)
        await self._channels.send_merged(deliveries)


@pytest.mark.parametrize("burst", [20, 70, 200])
async def test_a_burst_to_one_channel_is_merged_and_paced(channels: Channels, slack: FakeSlackApi,
                                                          burst: int) -> None:
    deliveries = [alert("slack://C0VIGIE01", n, label="Bureau" if n % 3 else "") for n in range(burst)]
    outbox, clock = ListOutbox(deliveries), VirtualClock()
    sent_at: list[float] = []
    limiter = RateLimiter(monotonic=clock.monotonic, sleep=clock.sleep)

    worker = OutboxWorker(outbox, Noting(channels, clock, sent_at), None, lambda: AT, limiter=limiter)
    result = await worker.drain(limit=500)
    assert result.delivered == burst
    assert sorted(outbox.done) == sorted(d.key for d in deliveries)
    messages = await slack.wait_for(-(-burst // 40))
    assert len(slack.messages) == len(messages) == -(-burst // 40)
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(sent_at))
    names = re.findall(r"Bistro \d+", " ".join(text_of(m) for m in messages))
    assert set(names) == {f"Bistro {n:02d}" for n in range(burst)}
    first = messages[0].blocks
    assert first[0]["text"]["text"] == f"{min(burst, 40)} alertes Vigie"
    assert any("et " in str(b) and " de plus : " in str(b) for b in first)
