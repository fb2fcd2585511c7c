"""`vigie api`: the REST API over the configured subscription store and current-state views.

With a Redis store publishing to Kafka, the API also sends again, every `republish_interval` seconds, the
subscription writes whose publication failed (runtime/republish.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from notifiers import mask, new_secret, validate_destination
from runtime.republish import republisher, republishing
from runtime.settings import Settings
from runtime.wiring import current_views, subscription_store
from subscriptions.api import Hooks, create_app

log = logging.getLogger(__name__)


async def build_app(settings: Settings) -> web.Application:
    store = subscription_store(settings)
    views = await current_views(settings)

    async def ready() -> bool:
        try:
            await store.get("readiness-probe")
        except Exception:  # any failure of the store means not ready; the probe says so
            log.exception("readiness check failed")
            return False
        return True

    token = settings.api_token.get_secret_value() if settings.api_token else None
    hooks = Hooks(validate_destination=validate_destination, new_secret=new_secret, mask=mask, ready=ready,
                  token=token)
    app = create_app(store, hooks, views)

    async def close(_: web.Application) -> None:
        await store.aclose()
        for view in views.values():
            await view.aclose()

    app.on_cleanup.append(close)  # after the cleanup contexts: the republish task stops before the store closes
    pending = republisher(store)
    if pending is not None:
        app.cleanup_ctx.append(republishing(pending, interval_s=settings.republish_interval))
    return app


async def serve(settings: Settings) -> None:
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
