"""Every channel over real HTTP against the local stand-ins: the fake Slack Web API and the webhook receiver.

The receiver verifies Standard Webhooks signatures itself; the fake Slack API checks tokens,
channels and Block Kit shape the way Slack does.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

try:
    from tests.unit.notifiers.support import LOCAL_RECEIVERS, delivery
except ModuleNotFoundError:  # pytest run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.unit.notifiers.support import LOCAL_RECEIVERS, delivery

from core import render, slack_blocks
from core.errors import DeliveryError
from notifiers import Channels, new_secret
from notifiers.slack import SlackChannel
from notifiers.webhook import WebhookChannel, signed_headers
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi

SECRET = new_secret()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    server = FakeSlackApi(archived={"C0ARCHIVE"}, not_member={"C0OUTSIDE"},
                          channels={"C0VIGIE01": "vigie-alerts", "C0ARCHIVE": "old", "C0OUTSIDE": "private"})
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def channels(slack_api: FakeSlackApi) -> AsyncIterator[Channels]:
    hub = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=slack_api.base_url, timeout=5.0,
                   webhook_guard=LOCAL_RECEIVERS)
    yield hub
    await hub.aclose()


async def send_failing(channels: Channels, destination: str, **kwargs: str) -> DeliveryError:
    with pytest.raises(DeliveryError) as raised:
        await channels.send(delivery(destination, **kwargs))
    return raised.value


# --- webhook -----------------------------------------------------------------------------------------------


async def test_webhook_posts_a_signed_cloudevent(channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    d = delivery(f"webhook+{url}", secret=SECRET)
    await channels.send(d)
    [got] = await receiver.wait_for(1)
    assert got.event == render.cloudevent(d)
    assert got.webhook_id == d.key
    assert got.headers["Content-Type"] == "application/cloudevents+json"
    assert got.headers["webhook-signature"].startswith("v1,")
    assert receiver.rejected == 0


async def test_webhook_signature_is_checked_with_the_subscription_secret(
        channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    error = await send_failing(channels, f"webhook+{url}", secret=new_secret())
    assert (error.retriable, receiver.rejected, receiver.received) == (False, 1, [])
    assert "refused the event with 401" in str(error)


async def test_webhook_retry_is_recognised_as_a_duplicate(channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    d = delivery(f"webhook+{url}", secret=SECRET)
    await channels.send(d)
    await channels.send(d)  # e.g. after a crash between sending and recording success
    assert (len(receiver.received), receiver.duplicates) == (1, 1)


async def test_each_endpoint_verifies_with_its_own_secret(channels: Channels, receiver: WebhookReceiver) -> None:
    other = new_secret()
    a, b = receiver.add_endpoint("a", SECRET), receiver.add_endpoint("b", other)
    await channels.send(delivery(f"webhook+{a}", sub_id="sa", secret=SECRET))
    await channels.send(delivery(f"webhook+{b}", sub_id="sb", secret=other))
    assert [r.endpoint for r in await receiver.wait_for(2)] == ["a", "b"]


@pytest.mark.parametrize(("status", "retriable"), [
    (400, False), (401, False), (404, False), (422, False),
    (408, True), (425, True), (429, True), (500, True), (502, True), (503, True),
])
async def test_webhook_status_mapping(channels: Channels, receiver: WebhookReceiver, status: int,
                                      retriable: bool) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    receiver.fail_next(status)
    error = await send_failing(channels, f"webhook+{url}", secret=SECRET)
    assert (error.retriable, error.retry_after) == (retriable, None)
    assert str(status) in str(error)


async def test_webhook_honours_retry_after(channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    receiver.fail_next(429, retry_after=42)
    error = await send_failing(channels, f"webhook+{url}", secret=SECRET)
    assert (error.retriable, error.retry_after) == (True, 42.0)


async def test_webhook_gone_is_final(channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    receiver.fail_next(410)
    error = await send_failing(channels, f"webhook+{url}", secret=SECRET)
    assert error.retriable is False
    assert "endpoint is gone (410 Gone)" in str(error)


async def test_webhook_without_secret_is_not_sent(channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    error = await send_failing(channels, f"webhook+{url}")
    assert (str(error), error.retriable, receiver.requests) == ("webhook subscription has no signing secret", False, 0)


async def test_webhook_unusable_secret_is_not_retriable(channels: Channels, receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    error = await send_failing(channels, f"webhook+{url}", secret="whsec_")
    assert error.retriable is False
    assert "not a valid whsec_ base64 secret" in str(error)


async def test_webhook_connection_refused_is_retriable(channels: Channels) -> None:
    gone = WebhookReceiver()
    await gone.start()
    url = gone.add_endpoint("partner", SECRET)
    await gone.close()  # nothing listens on that port any more
    error = await send_failing(channels, f"webhook+{url}?token=s3cr3t", secret=SECRET)
    assert error.retriable is True
    assert str(error).startswith(f"webhook webhook+{url}?token=*** unreachable: ")
    assert "s3cr3t" not in str(error)


async def test_webhook_timeout_is_retriable(receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    receiver.pause()  # the endpoint accepts the connection and never answers
    async with aiohttp.ClientSession() as session:
        channel = WebhookChannel(session, timeout=0.2)
        with pytest.raises(DeliveryError, match="unreachable") as raised:
            await channel.send(delivery(f"webhook+{url}", secret=SECRET))
    assert raised.value.retriable is True
    receiver.resume()


async def test_webhook_does_not_follow_redirects(receiver: WebhookReceiver) -> None:
    """A 3xx is the partner's configuration to fix, not something to chase with a signed body."""
    url = receiver.add_endpoint("partner", SECRET)
    receiver.fail_next(301)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError, match="refused the event with 301") as raised:
            await WebhookChannel(session).send(delivery(f"webhook+{url}", secret=SECRET))
    assert raised.value.retriable is False


async def test_receiver_rejects_a_tampered_body(receiver: WebhookReceiver) -> None:
    url = receiver.add_endpoint("partner", SECRET)
    headers = signed_headers(SECRET, "msg-1", datetime.now(UTC), '{"id": "msg-1"}')
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=b'{"id": "msg-2"}', headers=headers) as response:
            assert response.status == 401
        async with session.post(url, data=b'{"id": "msg-1"}', headers=headers) as response:
            assert response.status == 200
    assert (receiver.rejected, receiver.events) == (1, [{"id": "msg-1"}])


# --- slack -------------------------------------------------------------------------------------------------


async def test_slack_posts_block_kit(channels: Channels, slack_api: FakeSlackApi) -> None:
    d = delivery("slack://C0VIGIE01", lang="en")
    await channels.send(d)
    [message] = await slack_api.wait_for(1)
    text, blocks = slack_blocks.alert(d)
    assert (message.channel, message.text, message.blocks, message.token) == ("C0VIGIE01", text, blocks,
                                                                              DEFAULT_TOKEN)
    assert [b["type"] for b in message.blocks] == ["header", "section", "context"]
    assert message.blocks[0]["text"] == {"type": "plain_text", "text": "New sanitary inspection: Boulangerie du Port",
                                         "emoji": True}
    assert ":large_orange_circle:" in message.blocks[1]["text"]["text"]


@pytest.mark.parametrize("destination", ["slack://%23vigie-alerts", "slack://#vigie-alerts", "slack://vigie-alerts"])
async def test_slack_channel_by_name(channels: Channels, slack_api: FakeSlackApi, destination: str) -> None:
    await channels.send(delivery(destination))
    assert [m.channel for m in await slack_api.wait_for(1)] == ["C0VIGIE01"]


async def test_slack_token_in_the_url_wins(slack_api: FakeSlackApi) -> None:
    slack_api.tokens.add("xoxb-other-workspace")
    hub = Channels(slack_base_url=slack_api.base_url)  # no default token
    try:
        await hub.send(delivery("slack://xoxb-other-workspace@C0VIGIE01"))
        error = await send_failing(hub, "slack://C0VIGIE01")
    finally:
        await hub.aclose()
    assert [m.token for m in slack_api.messages] == ["xoxb-other-workspace"]
    assert error.retriable is False
    assert str(error).startswith("no Slack bot token")


@pytest.mark.parametrize(("destination", "code"), [
    ("slack://xoxb-revoked@C0VIGIE01", "invalid_auth"),
    ("slack://C0NOWHERE", "channel_not_found"),
    ("slack://%23nowhere", "channel_not_found"),
    ("slack://C0OUTSIDE", "not_in_channel"),
    ("slack://C0ARCHIVE", "is_archived"),
])
async def test_slack_permanent_errors(channels: Channels, slack_api: FakeSlackApi, destination: str,
                                      code: str) -> None:
    error = await send_failing(channels, destination)
    assert (error.retriable, error.retry_after) == (False, None)
    assert str(error).startswith(f"slack {code}: ")
    assert slack_api.messages == []


async def test_slack_rate_limit_is_retriable_after_retry_after(channels: Channels, slack_api: FakeSlackApi) -> None:
    slack_api.rate_limit_next(retry_after=30)
    error = await send_failing(channels, "slack://C0VIGIE01")
    assert (error.retriable, error.retry_after) == (True, 30.0)
    assert len(slack_api.requests) == 1  # slack_sdk did not retry behind our back


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_slack_server_errors_are_retriable(channels: Channels, slack_api: FakeSlackApi, status: int) -> None:
    slack_api.fail_next(status)
    error = await send_failing(channels, "slack://C0VIGIE01")
    assert (error.retriable, len(slack_api.requests)) == (True, 1)
    await channels.send(delivery("slack://C0VIGIE01"))
    assert len(await slack_api.wait_for(1)) == 1


async def test_slack_transient_error_code_is_retriable(channels: Channels, slack_api: FakeSlackApi) -> None:
    slack_api.fail_next(200, error="service_unavailable")
    assert (await send_failing(channels, "slack://C0VIGIE01")).retriable is True


async def test_slack_unknown_error_code_is_not_retriable(channels: Channels, slack_api: FakeSlackApi) -> None:
    slack_api.fail_next(200, error="invalid_blocks")
    error = await send_failing(channels, "slack://C0VIGIE01")
    assert (error.retriable, str(error).startswith("slack refused the message: invalid_blocks")) == (False, True)


async def test_slack_unreachable_is_retriable() -> None:
    gone = FakeSlackApi()
    base_url = await gone.start()
    await gone.close()
    async with aiohttp.ClientSession() as session:
        channel = SlackChannel(session, token=DEFAULT_TOKEN, base_url=base_url, timeout=2.0)
        with pytest.raises(DeliveryError, match="slack unreachable") as raised:
            await channel.send(delivery("slack://C0VIGIE01"))
    assert raised.value.retriable is True


async def test_fake_slack_answers_auth_test_and_conversations_list(slack_api: FakeSlackApi) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=DEFAULT_TOKEN, base_url=slack_api.base_url)
    assert (await client.auth_test())["bot_id"] == "B0VIGIE"
    listed = await client.conversations_list()
    assert {c["id"]: c["is_member"] for c in listed["channels"]} == {
        "C0VIGIE01": True, "C0ARCHIVE": True, "C0OUTSIDE": False}


async def test_fake_slack_checks_block_kit(slack_api: FakeSlackApi) -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=DEFAULT_TOKEN, base_url=slack_api.base_url)
    too_long = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    for blocks in (too_long, [{"type": "nonsense"}], [{"type": "section", "text": {"type": "html", "text": "x"}}]):
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C0VIGIE01", text="t", blocks=blocks)
        assert raised.value.response["error"] == "invalid_blocks"
    assert slack_api.messages == []
