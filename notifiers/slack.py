"""`slack://[xoxb-TOKEN@]CHANNEL`: a Block Kit message posted with slack_sdk's `AsyncWebClient`.

CHANNEL is a channel id (`C0123ABCD`) or a name (`#general`, written `%23general` or `general`).
Without a token in the URL the channel's default bot token is used (`SLACK_BOT_TOKEN`). `base_url`
points the same code at the local stand-in in tests and demos.

Slack errors → DeliveryError: `ratelimited` (HTTP 429) is retriable after `Retry-After`; 5xx,
Slack's own transient codes, timeouts and connection errors are retriable; anything else
(`invalid_auth`, `channel_not_found`, `not_in_channel`, `is_archived`, …) is not.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core import render
from core.errors import DeliveryError, SubscriptionError
from core.model import Delivery
from core.ports import Channel
from notifiers.base import (
    DEFAULT_TIMEOUT,
    MASK,
    Options,
    Plugin,
    parse_retry_after,
    scrub,
    split_scheme,
    target_of,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,79}")
_BOT_TOKEN = re.compile(r"xoxb-[A-Za-z0-9\-]+")
RETRIABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout"})
PERMANENT_ERRORS = {
    "invalid_auth": "the bot token is invalid",
    "not_authed": "no bot token was sent",
    "account_inactive": "the bot token belongs to a deactivated account",
    "token_revoked": "the bot token was revoked",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "not_in_channel": "the bot is not a member of the channel",
    "is_archived": "the channel is archived",
}


def _channel(raw: str) -> str:
    """`C0123ABCD` for an id, `#name` for a name."""
    if not raw:
        raise SubscriptionError("slack destination needs a channel: slack://[xoxb-TOKEN@]CHANNEL")
    name = raw.removeprefix("#")
    if name == raw and _CHANNEL_ID.fullmatch(raw):
        return raw
    if _CHANNEL_NAME.fullmatch(name):
        return f"#{name}"
    raise SubscriptionError(
        f"slack channel must be an id like C0123ABCD or a lower-case name like #general, got {raw!r}")


@dataclass(frozen=True, slots=True)
class SlackTarget:
    channel: str  # "C0123ABCD" or "#general"
    token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SlackTarget:
        scheme, rest = split_scheme(url)
        if scheme != "slack":
            raise SubscriptionError(f"not a slack destination: {scheme}://")
        token, at, raw = rest.rpartition("@")
        if at and not _BOT_TOKEN.fullmatch(token):  # never echo the token back: it is a secret
            raise SubscriptionError("slack token must be a bot token (xoxb-…) before the @ in slack://TOKEN@CHANNEL")
        return cls(_channel(unquote(raw.rstrip("/"))), token or None)

    def url(self, privacy: bool = True) -> str:
        channel = self.channel.replace("#", "%23")
        if self.token is None:
            return f"slack://{channel}"
        token = f"xoxb-{MASK}" if privacy else self.token
        return f"slack://{token}@{channel}"


def api_error(exc: SlackApiError, where: str) -> DeliveryError:
    """Map a Slack Web API failure to a DeliveryError."""
    response: Any = exc.response
    status: int = getattr(response, "status_code", 0) or 0
    data = getattr(response, "data", None)
    code = str(data.get("error", "")) if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    if status == 429 or code == "ratelimited":
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return DeliveryError(f"slack rate limited {where}", retriable=True, retry_after=retry_after)
    if code in PERMANENT_ERRORS:
        return DeliveryError(f"slack {code}: {PERMANENT_ERRORS[code]} ({where})", retriable=False)
    if status >= 500 or code in RETRIABLE_ERRORS:
        return DeliveryError(f"slack answered {status} {code or 'without an error code'} ({where})", retriable=True)
    return DeliveryError(f"slack refused the message: {code or status} ({where})", retriable=False)


class SlackChannel:
    """Posts with `chat.postMessage`; one `AsyncWebClient` per bot token, all on one aiohttp session."""

    scheme = "slack"

    def __init__(self, session: aiohttp.ClientSession, *, token: str | None = None,
                 base_url: str = DEFAULT_BASE_URL, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._session = session
        self._token = token
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._timeout = timeout
        self._clients: dict[str, AsyncWebClient] = {}

    def _client(self, token: str) -> AsyncWebClient:
        if token not in self._clients:  # retries are the worker's business: no retry handlers here
            self._clients[token] = AsyncWebClient(token=token, base_url=self._base_url, session=self._session,
                                                  timeout=max(1, math.ceil(self._timeout)), retry_handlers=[])
        return self._clients[token]

    async def send(self, delivery: Delivery) -> None:
        target = target_of(delivery, SlackTarget.parse)
        token = target.token or self._token
        if not token:
            raise DeliveryError("no Slack bot token: set SLACK_BOT_TOKEN or use slack://xoxb-TOKEN@CHANNEL",
                                retriable=False)
        text, blocks = render.slack(delivery.change, delivery.subscription.lang)
        try:
            async with asyncio.timeout(self._timeout):
                await self._client(token).chat_postMessage(channel=target.channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            raise api_error(exc, target.url()) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise DeliveryError(f"slack unreachable ({target.url()}): {reason}", retriable=True) from exc
        log.debug("posted %s to slack %s", delivery.key, target.url(), extra={
            "change_id": delivery.change.id, "subscription_id": delivery.subscription.id, "channel": self.scheme})

    async def aclose(self) -> None:
        self._clients.clear()  # the session belongs to whoever built the channel


def build(options: Options) -> Channel:
    return SlackChannel(options.session, token=options.slack_token, base_url=options.slack_base_url,
                        timeout=options.timeout)


PLUGIN = Plugin("slack", ("slack",), SlackTarget.parse, build)
