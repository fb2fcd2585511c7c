"""The chat side of Vigie, wired: the Slack `/vigie` slash command, and what a refusing destination does.

    vigie run      serves the slash command too when SLACK_SIGNING_SECRET is set (embedded, SQLite store)
    vigie bot      the distributed role: serves it on the Redis store, which publishes every write to the
                   compacted `subscriptions` topic exactly like `vigie api` does

A destination that refuses for good (a revoked token, a deleted or archived channel) is disabled through the
channels' `on_refused` (runtime/telegram.py `disabler`): kept, with the reason `vigie subscriptions list` shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pydantic
from aiohttp import web

from core.model import Subscription
from core.ports import SubscriptionStore
from notifiers import validate_destination
from notifiers.slack_commands import CommandHooks, SlashCommands
from runtime.settings import Settings
from subscriptions.schemas import SubscriptionIn

log = logging.getLogger(__name__)


def build_subscription(fields: Mapping[str, Any], subscription_id: str) -> Subscription:
    """A subscription from bot input, validated like the REST API's; ValueError with one line per problem."""
    try:
        spec = SubscriptionIn.model_validate(dict(fields))
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())
        raise ValueError(problems) from None
    return spec.model_copy(update={"to": validate_destination(spec.to)}).to_subscription(subscription_id)


async def start_slack_commands(settings: Settings, store: SubscriptionStore) -> web.AppRunner | None:
    """Serve `/vigie` on the configured host and port when a signing secret is set; the runner to clean up."""
    if settings.slack_signing_secret is None:
        return None
    commands = SlashCommands(CommandHooks(store, build_subscription),
                             settings.slack_signing_secret.get_secret_value())
    runner = web.AppRunner(commands.app())
    await runner.setup()
    await web.TCPSite(runner, settings.slack_commands_host, settings.slack_commands_port).start()
    log.info("slack slash command served on %s", runner.addresses)
    return runner


async def serve_bots(settings: Settings, store: SubscriptionStore, stop: asyncio.Event) -> None:
    """Host every configured bot until `stop` is set."""
    runner = await start_slack_commands(settings, store)
    if runner is None:
        log.warning("no bot configured: set SLACK_SIGNING_SECRET to serve the /vigie slash command")
    try:
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
