"""Channels that reach people, chosen by the destination URL's scheme, and the outbox worker (`worker.py`).

    console://[stderr]                  console.py   plain text, for demos
    webhook+https://host/path           webhook.py   signed CloudEvent (Standard Webhooks)
    slack://[xoxb-TOKEN@]CHANNEL        slack.py     Block Kit via chat.postMessage
    slack+https://hooks.slack.com/…     slack.py     Block Kit via an incoming webhook
    tg://[BOT_TOKEN@]CHAT_ID            telegram.py  HTML via the Bot API's sendMessage (python-telegram-bot)

Adding a channel (e.g. `tg://` in telegram.py) means one module exposing a `PLUGIN` (base.Plugin)
and one line in `PLUGINS` below; an optional dependency is imported inside its module's `build`.

Errors are core's, never a `False` return:

    SubscriptionError   validate_destination: unknown scheme, http to a public host, malformed URL
    DeliveryError       Channels.send: `retriable` and `retry_after` tell the worker what to do next
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import IO
from urllib.parse import urlsplit

import aiohttp

from core.errors import DeliveryError, SubscriptionError
from core.model import Delivery
from core.ports import BatchingChannel, Channel, MergingChannel, conforms
from core.urls import host_problem
from notifiers import console, slack, telegram, webhook
from notifiers.base import DEFAULT_TIMEOUT, Options, Plugin, Refused, Target, mask_unparsed, split_scheme
from notifiers.ssrf import Blocked, NetGuard
from notifiers.webhook import new_secret

__all__ = ["PLUGINS", "Channels", "NetGuard", "Options", "Plugin", "Target", "mask", "new_secret",
           "parse_destination", "validate_destination", "vet_destination"]

log = logging.getLogger(__name__)

PLUGINS: Mapping[str, Plugin] = MappingProxyType({
    plugin.name: plugin for plugin in (console.PLUGIN, webhook.PLUGIN, slack.PLUGIN, telegram.PLUGIN)
})


def parse_destination(url: str, plugins: Mapping[str, Plugin] = PLUGINS) -> Target:
    """The destination's Target; SubscriptionError saying precisely what is wrong otherwise."""
    scheme, _ = split_scheme(url)
    plugin = plugins.get(scheme.partition("+")[0])
    if plugin is None or scheme not in plugin.schemes:
        known = ", ".join(f"{s}://" for p in plugins.values() for s in p.schemes)
        raise SubscriptionError(f"unknown destination scheme {scheme}://: expected one of {known}")
    host = urlsplit(url.strip()).hostname if scheme.endswith(("+http", "+https")) else None
    problem = host_problem(host) if host else None  # no host at all: the plugin says what it expects
    if problem:
        raise SubscriptionError(f"{scheme}:// destination: {problem}")
    return plugin.parse(url.strip())


def validate_destination(url: str) -> str:
    """The normalised destination URL (secrets kept: this is what gets stored)."""
    return parse_destination(url).url(privacy=False)


async def vet_destination(url: str, guard: NetGuard) -> str:
    """`validate_destination`, and for a webhook the outbound guard's verdict on its host (resolved now: an
    internal address is refused here with a clear message, and again at every connection)."""
    destination = validate_destination(url)
    target = parse_destination(destination)
    if isinstance(target, webhook.WebhookTarget):
        host = urlsplit(target.endpoint).hostname or ""
        try:
            await guard.vet(host)
        except Blocked as exc:
            raise SubscriptionError(str(exc)) from exc
    return destination


def mask(url: str) -> str:
    """The destination as it may be logged or shown: tokens, passwords and query values hidden."""
    try:
        return parse_destination(url).url(privacy=True)
    except SubscriptionError:
        return mask_unparsed(url)


class Channels:
    """Every channel behind one `send`, built on first use from settings-like options.

    The aiohttp session is shared by the channels; one is created (and closed by `aclose`) when
    none is given.
    """

    def __init__(self, *, slack_token: str | None = None, slack_base_url: str = slack.DEFAULT_BASE_URL,
                 console_stream: IO[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 session: aiohttp.ClientSession | None = None, plugins: Mapping[str, Plugin] = PLUGINS,
                 telegram_token: str | None = None, telegram_base_url: str = telegram.DEFAULT_BASE_URL,
                 on_refused: Refused | None = None, webhook_guard: NetGuard | None = None) -> None:
        self._slack_token = slack_token
        self._webhook_guard = NetGuard() if webhook_guard is None else webhook_guard
        self._telegram_token, self._telegram_base_url = telegram_token, telegram_base_url
        self._on_refused = on_refused
        self._slack_base_url = slack_base_url
        self._console_stream = console_stream
        self._timeout = timeout
        self._session = session
        self._own_session = session is None
        self._plugins = plugins
        self._channels: dict[str, Channel] = {}

    def _options(self) -> Options:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        return Options(session=self._session, timeout=self._timeout, slack_token=self._slack_token,
                       slack_base_url=self._slack_base_url, console_stream=self._console_stream,
                       telegram_token=self._telegram_token, telegram_base_url=self._telegram_base_url,
                       on_refused=self._on_refused, webhook_guard=self._webhook_guard)

    def channel(self, name: str) -> Channel:
        """The channel called `name` (`slack`, `webhook`, …); DeliveryError if there is none."""
        if name not in self._channels:
            plugin = self._plugins.get(name)
            if plugin is None:
                raise DeliveryError(f"no channel for {name}:// destinations", retriable=False)
            self._channels[name] = plugin.build(self._options())
        return self._channels[name]

    async def send(self, delivery: Delivery) -> None:
        await self.channel(delivery.subscription.channel).send(delivery)

    def merge_limit(self, name: str) -> int:
        """How many alerts to one destination channel `name` can merge into one message (1: it cannot)."""
        channel = self.channel(name)
        return max(1, channel.merge_limit) if conforms(channel, MergingChannel) else 1

    def batch_limit(self, name: str) -> int:
        """How many alerts channel `name` sends in one batch to a subscription that opted in (1: no batches)."""
        channel = self.channel(name)
        return max(1, channel.batch_limit) if conforms(channel, BatchingChannel) else 1

    async def send_merged(self, deliveries: Sequence[Delivery]) -> None:
        """One message for deliveries sharing a destination (one delivery: a plain `send`): merged (Slack), or one
        batch of a subscription that opted in (webhooks)."""
        channel = self.channel(deliveries[0].subscription.channel)
        if conforms(channel, BatchingChannel) and deliveries[0].subscription.batch:
            await channel.send_batch(deliveries)
        elif len(deliveries) == 1:
            await channel.send(deliveries[0])
        elif conforms(channel, MergingChannel):
            await channel.send_merged(deliveries)
        else:
            raise DeliveryError(f"{deliveries[0].subscription.channel}:// cannot merge alerts", retriable=False)

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.aclose()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
