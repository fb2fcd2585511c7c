"""Slack: Block Kit alerts (core/slack_blocks.py), by bot token or by incoming webhook.

    slack://[xoxb-TOKEN@]CHANNEL                       chat.postMessage with slack_sdk's `AsyncWebClient`
    slack+https://hooks.slack.com/services/T…/B…/…     an incoming webhook, with slack_sdk's `AsyncWebhookClient`

CHANNEL is a channel id (`C0123ABCD`) or a name (`#general`, written `%23general` or `general`).
Without a token in the URL the channel's default bot token is used (`SLACK_BOT_TOKEN`). `base_url`
points the same code at the local stand-in in tests and demos; `slack+http://` is for loopback hosts only.
`url(privacy=True)` hides the token and the webhook's secret path segment.

`send_merged` posts several alerts for one destination as one message (`slack_blocks.digest`): the workers
use it to keep a channel at about one message per second without dropping anything.

Slack errors → DeliveryError: `ratelimited` (HTTP 429) is retriable after `Retry-After`; 5xx,
Slack's own transient codes, timeouts and connection errors are retriable; `invalid_auth`,
`channel_not_found`, `is_archived`, `account_inactive`, `token_revoked` (webhooks: `invalid_token`,
`channel_not_found`, `channel_is_archived`, `no_service`, `no_active_hooks`) are DestinationGone, reported to
`on_refused(destination, reason)` (runtime/ disables every subscription to it); anything else
(`not_in_channel`, …) is a plain permanent failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from core import slack_blocks
from core.errors import DeliveryError, DestinationGone, SubscriptionError
from core.model import Delivery
from core.ports import Channel
from notifiers.base import (
    DEFAULT_TIMEOUT,
    MASK,
    Options,
    Plugin,
    Refused,
    parse_retry_after,
    scrub,
    split_scheme,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://slack.com/api/"
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
_CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]{0,79}")
_BOT_TOKEN = re.compile(r"xoxb-[A-Za-z0-9\-]+")
RETRIABLE_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout"})
GONE = frozenset({"invalid_auth", "account_inactive", "token_revoked", "channel_not_found", "is_archived"})
HOOK_ERRORS = {
    "invalid_token": "the incoming webhook was revoked",
    "no_service": "the incoming webhook is disabled or removed",
    "no_active_hooks": "the incoming webhook is disabled",
    "channel_not_found": "the webhook's channel no longer exists",
    "channel_is_archived": "the webhook's channel is archived",
}
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


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class SlackHookTarget:
    """An incoming webhook: `slack+https://hooks.slack.com/services/T…/B…/SECRET`."""

    endpoint: str = field(repr=False)

    @classmethod
    def parse(cls, url: str) -> SlackHookTarget:
        scheme, rest = split_scheme(url)
        http = scheme.removeprefix("slack+")
        parts = urlsplit(f"{http}://{rest}")
        host = parts.hostname or ""
        if http not in ("https", "http") or not host or parts.query or parts.username:
            raise SubscriptionError("slack incoming webhook must look like slack+https://hooks.slack.com/services/…")
        if http == "http" and not _is_loopback(host):
            raise SubscriptionError(f"slack+http:// is only allowed for loopback hosts, not {host}: use slack+https://")
        segments = [seg for seg in parts.path.split("/") if seg]
        if len(segments) < 2:
            raise SubscriptionError("slack incoming webhook URL needs its path (/services/T…/B…/…)")
        return cls(f"{http}://{parts.netloc}/{'/'.join(segments)}")

    def url(self, privacy: bool = True) -> str:
        if not privacy:
            return f"slack+{self.endpoint}"
        return f"slack+{self.endpoint.rpartition('/')[0]}/{MASK}"


def parse(url: str) -> SlackTarget | SlackHookTarget:
    scheme, _ = split_scheme(url)
    return SlackTarget.parse(url) if scheme == "slack" else SlackHookTarget.parse(url)


def hook_error(status: int, body: str, headers: Any, where: str) -> DeliveryError | None:
    """The DeliveryError an incoming webhook's answer means (`ok` with 200 is success)."""
    code = body.strip()
    if status == 200 and code == "ok":
        return None
    if status == 429:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        return DeliveryError(f"slack webhook rate limited {where}", retriable=True, retry_after=retry_after)
    if code in HOOK_ERRORS:
        return DestinationGone(f"slack {code}: {HOOK_ERRORS[code]} ({where})")
    if status >= 500:
        return DeliveryError(f"slack webhook answered {status} ({where})", retriable=True)
    return DeliveryError(f"slack webhook refused the message: {status} {code[:100]} ({where})", retriable=False)


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
    if code in GONE:
        return DestinationGone(f"slack {code}: {PERMANENT_ERRORS[code]} ({where})")
    if code in PERMANENT_ERRORS:
        return DeliveryError(f"slack {code}: {PERMANENT_ERRORS[code]} ({where})", retriable=False)
    if status >= 500 or code in RETRIABLE_ERRORS:
        return DeliveryError(f"slack answered {status} {code or 'without an error code'} ({where})", retriable=True)
    return DeliveryError(f"slack refused the message: {code or status} ({where})", retriable=False)


class SlackChannel:
    """Posts with `chat.postMessage` (one `AsyncWebClient` per bot token) or to incoming webhooks, all on one
    aiohttp session."""

    scheme = "slack"
    merge_limit = slack_blocks.MAX_MERGED

    def __init__(self, session: aiohttp.ClientSession, *, token: str | None = None,
                 base_url: str = DEFAULT_BASE_URL, timeout: float = DEFAULT_TIMEOUT,
                 on_refused: Refused | None = None) -> None:
        self._session = session
        self._on_refused = on_refused
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
        await self.send_merged([delivery])

    async def send_merged(self, deliveries: Sequence[Delivery]) -> None:
        """One message for `deliveries` (all to the same destination): the alert, or a digest of them."""
        try:
            target = parse(deliveries[0].subscription.destination)
        except SubscriptionError as exc:
            raise DeliveryError(f"invalid destination: {exc}", retriable=False) from exc
        try:
            await self._send(target, deliveries)
        except DestinationGone as exc:
            if self._on_refused is not None:
                await self._on_refused(deliveries[0].subscription.destination, str(exc))
            raise
        first = deliveries[0]
        log.debug("posted %d alert(s) to slack %s", len(deliveries), target.url(), extra={
            "change_id": first.change.id, "subscription_id": first.subscription.id, "channel": self.scheme})

    async def _send(self, target: SlackTarget | SlackHookTarget, deliveries: Sequence[Delivery]) -> None:
        text, blocks = slack_blocks.digest(deliveries)
        try:
            async with asyncio.timeout(self._timeout):
                await self._post(target, text, blocks)
        except SlackApiError as exc:
            raise api_error(exc, target.url()) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            raise DeliveryError(f"slack unreachable ({target.url()}): {reason}", retriable=True) from exc

    async def _post(self, target: SlackTarget | SlackHookTarget, text: str, blocks: list[dict[str, Any]]) -> None:
        if isinstance(target, SlackHookTarget):
            hook = AsyncWebhookClient(target.endpoint, session=self._session, retry_handlers=[],
                                      timeout=max(1, math.ceil(self._timeout)))
            response = await hook.send(text=text, blocks=blocks)
            error = hook_error(response.status_code, response.body, response.headers, target.url())
            if error is not None:
                raise error
            return
        token = target.token or self._token
        if not token:
            raise DeliveryError("no Slack bot token: set SLACK_BOT_TOKEN or use slack://xoxb-TOKEN@CHANNEL",
                                retriable=False)
        await self._client(token).chat_postMessage(channel=target.channel, text=text, blocks=blocks)

    async def aclose(self) -> None:
        self._clients.clear()  # the session belongs to whoever built the channel


def build(options: Options) -> Channel:
    return SlackChannel(options.session, token=options.slack_token, base_url=options.slack_base_url,
                        timeout=options.timeout, on_refused=options.on_refused)


PLUGIN = Plugin("slack", ("slack", "slack+https", "slack+http"), parse, build)
