"""Hosting the Telegram bot, and disabling the subscriptions of destinations that refused for good (`disabler`,
every channel's `on_refused`: a user who blocked the bot, a revoked Slack token…); `/start` re-enables a chat's.

    embedded     `vigie run` hosts the bot next to its loops when a bot token is configured, on the SQLite
                 subscription store and the runtime's own current-state view
    distributed  `vigie bot`: the Redis subscription store (every write published to the compacted
                 `subscriptions` topic, pending ones sent again every `republish_interval`) and the Redis view

Updates come by long polling (`VIGIE_TELEGRAM_MODE=polling`, the default: one bot process only, Telegram
allows a single getUpdates consumer) or by webhook (`webhook`: an aiohttp server on
`VIGIE_TELEGRAM_WEBHOOK_HOST:PORT` serving the path of `VIGIE_TELEGRAM_WEBHOOK_URL`, registered with
setWebhook and the secret token; any number of replicas behind a load balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from core.errors import PublishError
from core.ports import CurrentView, SubscriptionStore
from notifiers import mask
from notifiers.base import Refused
from notifiers.telegram import INSTALL_HINT
from runtime.bots import serve_bots
from runtime.republish import republish_forever, republisher
from runtime.settings import Settings
from runtime.wiring import current_views, subscription_store

log = logging.getLogger(__name__)

DATASET = "alimconfiance"  # the dataset the bot answers about


def disabler(store: SubscriptionStore) -> Refused:
    """`on_refused` for Channels: every subscription to `destination` not yet disabled for `reason` is disabled."""

    async def disable(destination: str, reason: str) -> None:
        changed = [replace(s, disabled_reason=reason) for s in await store.all()
                   if s.destination == destination and s.disabled_reason != reason]
        for subscription in changed:
            with contextlib.suppress(PublishError):  # stored; published again with the other pending writes
                await store.put(subscription)
        if changed:
            log.warning("disabled %d subscription(s) of %s: %s", len(changed), mask(destination), reason,
                        extra={"subscription_ids": [s.id for s in changed], "channel": changed[0].channel})

    return disable


def telegram_options(settings: Settings) -> dict[str, Any]:
    """Channels' telegram keywords from the settings."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
    return {"telegram_token": token, "telegram_base_url": settings.telegram_api_url}


async def host_bot(settings: Settings, store: SubscriptionStore, view: CurrentView, stop: asyncio.Event) -> None:
    """Run the bot until `stop` is set: initialise it (getMe), then poll or serve the webhook."""
    try:
        from notifiers.telegram_bot import BotConfig, build_application  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise SystemExit(f"the Telegram bot needs {INSTALL_HINT.partition(': ')[2]}") from exc
    if settings.telegram_bot_token is None:
        raise SystemExit("the Telegram bot needs a token: set TELEGRAM_BOT_TOKEN (from @BotFather)")
    webhook = settings.telegram_mode == "webhook"
    config = BotConfig(settings.telegram_bot_token.get_secret_value(), settings.telegram_api_url, polling=not webhook)
    app = build_application(config, store, view)
    async with app:
        await app.start()
        try:
            await (_serve_webhook(app, settings, stop) if webhook else _poll(app, settings, stop))
        finally:
            await app.stop()


async def _poll(app: Any, settings: Settings, stop: asyncio.Event) -> None:
    from notifiers.telegram_bot import ALLOWED_UPDATES  # noqa: PLC0415 - optional extra

    await app.updater.start_polling(timeout=settings.telegram_poll_timeout, allowed_updates=list(ALLOWED_UPDATES))
    log.warning("telegram bot @%s polling for updates", app.bot.username)
    try:
        await stop.wait()
    finally:
        await app.updater.stop()


async def _serve_webhook(app: Any, settings: Settings, stop: asyncio.Event) -> None:
    from notifiers.telegram_bot import ALLOWED_UPDATES, webhook_app  # noqa: PLC0415 - optional extra

    url, secret = settings.telegram_webhook_url, settings.telegram_webhook_secret
    if not url or secret is None:
        raise SystemExit("webhook mode needs VIGIE_TELEGRAM_WEBHOOK_URL and VIGIE_TELEGRAM_WEBHOOK_SECRET")
    runner = web.AppRunner(webhook_app(app, secret.get_secret_value(), urlsplit(url).path or "/"), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.telegram_webhook_host, settings.telegram_webhook_port).start()
        await app.bot.set_webhook(url, secret_token=secret.get_secret_value(), allowed_updates=list(ALLOWED_UPDATES))
        log.warning("telegram bot @%s receiving updates at %s", app.bot.username, mask(f"webhook+{url}"))
        await stop.wait()
    finally:
        await runner.cleanup()


async def run_bot(settings: Settings, stop: asyncio.Event) -> None:
    """The `vigie bot` role: the bot on the configured store and view, and the republication of pending writes."""
    store = subscription_store(settings)
    views = await current_views(settings)
    pending = republisher(store)
    task = asyncio.create_task(republish_forever(pending, interval_s=settings.republish_interval)) \
        if pending is not None else None
    try:
        async with asyncio.TaskGroup() as bots:  # whichever bots are configured (no Slack secret: Telegram's)
            if settings.slack_signing_secret is not None:
                bots.create_task(serve_bots(settings, store, stop))
            if settings.telegram_bot_token is not None or settings.slack_signing_secret is None:
                bots.create_task(host_bot(settings, store, views[DATASET], stop))
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for view in views.values():
            await view.aclose()
        await store.aclose()
