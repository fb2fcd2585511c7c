"""`vigie api`: the REST API over the configured subscription store, key store and current-state views.

With a Redis store publishing to Kafka, the API also sends again, every `republish_interval` seconds, the
subscription writes whose publication failed (runtime/republish.py).

Security (docs/api.md): callers present a tenant's API key (`vigie tenants add`). Without any key or
`api_token`, the API answers anonymous callers, but only when it listens on loopback: `serve` refuses to
listen anywhere else until a key exists.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from contextlib import AsyncExitStack
from datetime import timedelta
from functools import partial

from aiohttp import web

from notifiers import mask, new_secret, vet_destination
from runtime.deliveries import dead_letters
from runtime.republish import republisher, republishing
from runtime.settings import Settings
from runtime.wiring import change_log, current_views, key_store, subscription_store, webhook_guard
from subscriptions.api import Auth, Hooks, create_app
from subscriptions.keys import KeyStore

log = logging.getLogger(__name__)


class Unprotected(SystemExit):
    """`vigie api` asked to listen beyond loopback with no API key and no token configured."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def build_app(settings: Settings) -> web.Application:
    store = subscription_store(settings)
    keys = key_store(settings)
    views = await current_views(settings)

    async def ready() -> bool:
        try:
            await store.get("readiness-probe")
        except Exception:  # any failure of the store means not ready; the probe says so
            log.exception("readiness check failed")
            return False
        return True

    hooks = Hooks(check_destination=partial(vet_destination, guard=webhook_guard(settings)), new_secret=new_secret,
                  mask=mask, ready=ready, rotation_overlap=timedelta(seconds=settings.webhook_secret_overlap))
    stack = AsyncExitStack()
    dead = await stack.enter_async_context(dead_letters(settings))
    changes = change_log(settings)
    app = create_app(store, hooks, views, auth=_auth(settings, keys), dead_letters=dead, change_log=changes)

    async def close(_: web.Application) -> None:
        await store.aclose()
        await keys.aclose()
        await changes.aclose()
        for view in views.values():
            await view.aclose()
        await stack.aclose()

    app.on_cleanup.append(close)  # after the cleanup contexts: the republish task stops before the store closes
    pending = republisher(store)
    if pending is not None:
        app.cleanup_ctx.append(republishing(pending, interval_s=settings.republish_interval))
    return app


def _auth(settings: Settings, keys: KeyStore) -> Auth:
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return Auth(keys, token=token, open_when_empty=is_loopback(settings.api_host), rate=settings.api_rate,
                burst=settings.api_burst)


async def check_exposure(settings: Settings) -> None:
    """Unprotected when the API would listen beyond loopback with nobody to authenticate."""
    if is_loopback(settings.api_host) or settings.api_token is not None:
        return
    keys = key_store(settings)
    try:
        if not any(not key.revoked for key in await keys.all()):
            raise Unprotected(
                f"vigie api: refusing to listen on {settings.api_host} with no API key: anyone could read and "
                "delete every subscription. Create one with `vigie tenants add NAME`, or listen on 127.0.0.1")
    finally:
        await keys.aclose()


async def serve(settings: Settings) -> None:
    await check_exposure(settings)
    runner = web.AppRunner(await build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    log.warning("vigie api listening on http://%s:%d", settings.api_host, settings.api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
