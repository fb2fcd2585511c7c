"""The `/vigie` slash command over HTTP (aiohttp): a Slack channel subscribes itself, from inside Slack.

    POST /slack/commands     form-encoded, as Slack sends it (command, text, channel_id, user_id, …)
    GET  /healthz

    /vigie subscribe near 48.8566,2.3522 [radius 1km] [rating 3] [kinds downgrade,new_inspection] [lang en]
                     [digest 6h] [quiet 22:00-07:00] [timezone Europe/Paris]
    /vigie subscribe postcode 75011 | commune 75056 | 75011   (a bare 5-digit code is a postcode)
    /vigie digest 6h|off [ID] | quiet 22:00-07:00|off [ID]   (the channel's subscriptions, or one)
    /vigie list | pause [ID] | resume [ID] | unsubscribe ID | help

The channel the command is typed in is the destination (`slack://CHANNEL_ID`, sent with the bot token of the
deployment). Every request is checked with slack_sdk's `SignatureVerifier` (`v0=` HMAC-SHA256 of
`v0:{timestamp}:{body}` with the app's signing secret; older than 5 minutes is refused): 401 otherwise.
The answer is the HTTP response body, `{"response_type": "ephemeral" | "in_channel", "text": …}`.

What this module needs from elsewhere comes in `CommandHooks` (runtime/ wires it): the subscription store
(core.ports.SubscriptionStore; the distributed store publishes every write to the stream workers) and
`build(fields, id)`, which validates the fields like the REST API does and raises ValueError with a message.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from slack_sdk.signature import Clock, SignatureVerifier

from core.errors import PublishError, SubscriptionError
from core.geo import AdminArea, Circle
from core.model import Subscription
from core.ports import SubscriptionStore
from core.schedule import digest_option, quiet_option, timing

log = logging.getLogger(__name__)

PATH = "/slack/commands"
HELP = """*Vigie* tells this channel when a food business's sanitary inspection result changes nearby.
• `/vigie subscribe near 48.8566,2.3522 radius 1km rating 3 kinds downgrade` (radius, rating, kinds, lang optional)
• `/vigie subscribe postcode 75011` or `/vigie subscribe commune 75056`
• add `digest 6h` (alerts grouped every 6 hours) or `quiet 22:00-07:00` (held overnight) to a subscribe, or
  `/vigie digest 6h|off [ID]` · `/vigie quiet 22:00-07:00|off [ID]` later; urgent alerts always go at once
• `/vigie list` · `/vigie pause [ID]` · `/vigie resume [ID]` · `/vigie unsubscribe ID`
rating N keeps results rated N or worse (1 Très satisfaisant … 4 A corriger de manière urgente)."""
_OPTIONS = {"near": "near", "radius": "radius_m", "rating": "rating_at_least", "kinds": "kinds", "lang": "lang",
            "postcode": "postcode", "commune": "commune", "label": "label", "digest": "digest", "quiet": "quiet",
            "timezone": "timezone"}
Build = Callable[[Mapping[str, Any], str], Subscription]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CommandHooks:
    store: SubscriptionStore
    build: Build
    new_id: Callable[[], str] = lambda: f"sub_{secrets.token_hex(5)}"


class CommandError(Exception):
    """A command the user typed wrong: the message is shown to them."""


def reply(text: str, *, public: bool = False) -> web.Response:
    return web.json_response({"response_type": "in_channel" if public else "ephemeral", "text": text})


def destination_of(channel_id: str) -> str:
    return f"slack://{channel_id}"


def channel_of(destination: str) -> str | None:
    """The Slack channel a `slack://[TOKEN@]CHANNEL` destination posts to; None for other destinations."""
    if not destination.startswith("slack://"):
        return None
    return destination.removeprefix("slack://").rpartition("@")[2].rstrip("/")


def subscription_fields(words: list[str]) -> dict[str, Any]:
    """`near 48.85,2.35 radius 1km rating 3` → SubscriptionIn fields; a bare 5-digit code first is a postcode
    (`75011 digest 6h`)."""
    if words and words[0].isdigit() and len(words[0]) == 5:
        words = ["postcode", *words]
    if len(words) % 2:
        raise CommandError(f"expected pairs like `near 48.85,2.35 radius 1km`, got `{' '.join(words)}`")
    fields: dict[str, Any] = {}
    for name, value in zip(words[::2], words[1::2], strict=True):
        if name.lower() not in _OPTIONS:
            raise CommandError(f"unknown option `{name}`: use {', '.join(sorted(_OPTIONS))}")
        fields[_OPTIONS[name.lower()]] = value
    if "kinds" in fields:
        fields["kinds"] = frozenset(k for k in fields["kinds"].split(",") if k)
    if "near" in fields:
        fields.setdefault("radius_m", "1km")
    return fields


def describe(subscription: Subscription) -> str:
    area = subscription.area
    if isinstance(area, Circle):
        where = f"{area.radius_m:g} m around {area.center.lat:.4f},{area.center.lon:.4f}"
    else:
        where = f"{area.level} {area.code}" if isinstance(area, AdminArea) else type(area).__name__.lower()
    rating = subscription.filter.min_rating
    status = ("disabled: " + subscription.disabled_reason) if subscription.disabled_reason else (
        "paused" if subscription.paused else "active")
    extra = f", rating ≥ {rating}" if rating else ""
    kinds = f", {', '.join(sorted(subscription.filter.kinds))}" if subscription.filter.kinds else ""
    when = timing(subscription)
    schedule = f", {when}" if subscription.digest_hours or subscription.quiet_hours else ""
    return f"`{subscription.id}` {where}{extra}{kinds}{schedule} ({status})"


class SlashCommands:
    """The handlers; `app()` is the aiohttp application serving them."""

    def __init__(self, hooks: CommandHooks, signing_secret: str, *, clock: Clock | None = None) -> None:
        self._hooks = hooks
        self._verifier = SignatureVerifier(signing_secret, clock or Clock())

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post(PATH, self.handle)
        app.router.add_get("/healthz", _ok)
        return app

    def verified(self, body: bytes, headers: Mapping[str, str]) -> bool:
        try:
            return self._verifier.is_valid_request(body, dict(headers))
        except ValueError:  # a timestamp that is not a number
            return False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.verified(body, request.headers):
            log.warning("slash command with a bad or stale signature refused")
            return web.json_response({"error": "invalid signature"}, status=401)
        form = await request.post()
        channel = str(form.get("channel_id", ""))
        words = str(form.get("text", "")).split()
        if not channel:
            return reply("no channel_id in the request")
        try:
            return await self.run(channel, words)
        except CommandError as exc:
            return reply(f":warning: {exc}")

    async def run(self, channel: str, words: list[str]) -> web.Response:
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        commands: dict[str, Callable[[str, list[str]], Awaitable[web.Response]]] = {
            "subscribe": self.subscribe, "list": self.listing, "pause": self.pause, "resume": self.resume,
            "unsubscribe": self.unsubscribe, "digest": self.digest, "quiet": self.quiet}
        command = commands.get(verb)
        return reply(HELP) if command is None else await command(channel, args)

    async def subscribe(self, channel: str, args: list[str]) -> web.Response:
        fields = {**subscription_fields(args), "to": destination_of(channel)}
        try:
            subscription = self._hooks.build(fields, self._hooks.new_id())
        except (ValueError, SubscriptionError) as exc:
            raise CommandError(f"cannot subscribe: {exc}") from exc
        later = await _write(self._hooks.store.put(subscription))
        return reply(f":white_check_mark: subscribed {describe(subscription)}{later}", public=True)

    async def _mine(self, channel: str, wanted: str | None = None) -> list[Subscription]:
        found = [s for s in await self._hooks.store.all() if channel_of(s.destination) == channel]
        if wanted is not None:
            found = [s for s in found if s.id == wanted]
            if not found:
                raise CommandError(f"no subscription `{wanted}` in this channel (see `/vigie list`)")
        return found

    async def listing(self, channel: str, args: list[str]) -> web.Response:
        mine = await self._mine(channel)
        if not mine:
            return reply("No subscription in this channel yet: `/vigie subscribe near LAT,LON radius 1km`")
        return reply("\n".join(describe(s) for s in mine))

    async def pause(self, channel: str, args: list[str]) -> web.Response:
        return await self._set(channel, args, paused=True)

    async def resume(self, channel: str, args: list[str]) -> web.Response:
        return await self._set(channel, args, paused=False)

    async def _set(self, channel: str, args: list[str], *, paused: bool) -> web.Response:
        mine = await self._mine(channel, args[0] if args else None)
        later = ""
        for subscription in mine:  # resuming also re-enables a destination that was disabled
            later = await _write(self._hooks.store.put(
                dataclasses.replace(subscription, paused=paused, disabled_reason=None if not paused
                                    else subscription.disabled_reason))) or later
        verb = "paused" if paused else "resumed"
        return reply(f"{verb} {len(mine)} subscription(s){later}", public=True)

    async def digest(self, channel: str, args: list[str]) -> web.Response:
        if len(args) not in (1, 2):
            raise CommandError("usage: `/vigie digest 6h [ID]` or `/vigie digest off [ID]`")
        hours = _option(digest_option, args[0])
        return await self._schedule(channel, args[1:], lambda s: dataclasses.replace(s, digest_hours=hours))

    async def quiet(self, channel: str, args: list[str]) -> web.Response:
        if len(args) not in (1, 2):
            raise CommandError("usage: `/vigie quiet 22:00-07:00 [ID]` or `/vigie quiet off [ID]`")
        window = _option(quiet_option, args[0])
        return await self._schedule(channel, args[1:], lambda s: dataclasses.replace(s, quiet_hours=window))

    async def _schedule(self, channel: str, args: list[str],
                        change: Callable[[Subscription], Subscription]) -> web.Response:
        mine = await self._mine(channel, args[0] if args else None)
        if not mine:
            raise CommandError("no subscription in this channel yet: `/vigie subscribe near LAT,LON radius 1km`")
        later = ""
        for subscription in mine:
            later = await _write(self._hooks.store.put(change(subscription))) or later
        timings = {s.id: timing(change(s)) for s in mine}
        if len(set(timings.values())) == 1:  # the same for all: say it once
            return reply(f"{timings[mine[0].id]} for {len(mine)} subscription(s){later}", public=True)
        return reply("\n".join(f"`{sub_id}` {told}" for sub_id, told in timings.items()) + later, public=True)

    async def unsubscribe(self, channel: str, args: list[str]) -> web.Response:
        if len(args) != 1:
            raise CommandError("usage: `/vigie unsubscribe ID` (see `/vigie list`)")
        [subscription] = await self._mine(channel, args[0])
        later = await _write(self._hooks.store.delete(subscription.id))
        return reply(f"unsubscribed `{subscription.id}`{later}", public=True)


def _option(read: Callable[[str], T], text: str) -> T:
    try:
        return read(text)
    except SubscriptionError as exc:
        raise CommandError(str(exc)) from exc


async def _write(write: Awaitable[object]) -> str:
    """Run a store write; a note for the reply when it is stored but reaches the stream workers later."""
    try:
        await write
    except PublishError:  # stored; the store logged it and it is published later
        return " (saved; alerts start once the stream workers have it)"
    return ""


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
