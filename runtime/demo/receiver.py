"""A local webhook receiver that behaves like a careful partner: verifies, dedupes, stores.

Every request to `/hooks/{name}` is verified with `standardwebhooks.Webhook(secret).verify` for
that endpoint's secret (invalid → 401, counted in `rejected`), deduplicated on `webhook-id`
(a repeat → 200, counted in `duplicates`, stored once) and kept as a parsed CloudEvent.
Faults: `fail_next(status, times)`; `pause()` holds requests in flight until `resume()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    endpoint: str
    webhook_id: str
    event: dict[str, Any]  # the CloudEvent, parsed
    headers: Mapping[str, str]


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[ReceivedEvent] = []
        self.rejected = 0
        self.duplicates = 0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._secrets: dict[str, str] = {}
        self._seen: set[tuple[str, str]] = set()
        self._faults: dict[str | None, deque[tuple[int, float | None]]] = {}  # endpoint (None: any) → faults
        self._open = asyncio.Event()
        self._open.set()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: any free port); returns the base URL (no trailing slash)."""
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.base_url

    async def close(self) -> None:
        self._open.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_endpoint(self, name: str, secret: str) -> str:
        """Accept events at `/hooks/{name}` signed with `secret`; returns the endpoint's http URL."""
        if not self.base_url:
            raise RuntimeError("start() the receiver before adding endpoints")
        Webhook(secret)  # fail here, not on the first request, if the secret is unusable
        self._secrets[name] = secret
        return f"{self.base_url}/hooks/{name}"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.event for r in self.received]

    def fail_next(self, status: int = 503, times: int = 1, *, retry_after: float | None = None,
                  endpoint: str | None = None) -> None:
        """The next `times` valid requests (to `endpoint`, or to any) answer `status`, with `Retry-After` if given.

        A failed request is not stored, so its retry is not a duplicate.
        """
        self._faults.setdefault(endpoint, deque()).extend([(status, retry_after)] * times)

    def pause(self) -> None:
        """Hold every request in flight until `resume()`."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedEvent]:  # noqa: ASYNC109 - a deadline is the point
        """The first `n` stored events, once they have arrived; TimeoutError after `timeout` seconds."""
        await self._wait(lambda: len(self.received) >= n, timeout, lambda: f"{len(self.received)} of {n} events")
        return self.received[:n]

    async def wait_in_flight(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a deadline is the point
        """Until `n` requests are in flight at once (use with `pause()`)."""
        await self._wait(lambda: self.in_flight >= n, timeout, lambda: f"{self.in_flight} of {n} requests in flight")

    async def _wait(self, ready: Callable[[], bool], seconds: float, progress: Callable[[], str]) -> None:
        try:
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(ready)
        except TimeoutError:
            raise TimeoutError(f"{progress()} within {seconds}s") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.Response:
        secret = self._secrets.get(request.match_info["name"])
        if secret is None:
            return web.Response(status=404, text="no such endpoint")
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._notify()
            await self._open.wait()
            return await self._accept(request, secret)
        finally:
            self.in_flight -= 1
            await self._notify()

    async def _accept(self, request: web.Request, secret: str) -> web.Response:
        body = await request.read()
        try:
            event = Webhook(secret).verify(body, dict(request.headers))
        except (WebhookVerificationError, ValueError):
            self.rejected += 1
            return web.Response(status=401, text="invalid signature")
        if request.content_type != CONTENT_TYPE or not isinstance(event, dict):
            return web.Response(status=415, text=f"expected a structured CloudEvent ({CONTENT_TYPE})")
        name, webhook_id = request.match_info["name"], request.headers["webhook-id"]
        if faults := self._faults.get(name) or self._faults.get(None):
            status, retry_after = faults.popleft()
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            return web.Response(status=status, headers=headers, text="injected failure")
        if (name, webhook_id) in self._seen:
            self.duplicates += 1
            return web.Response(status=200, text="duplicate")
        self._seen.add((name, webhook_id))
        self.received.append(ReceivedEvent(name, webhook_id, event, dict(request.headers)))
        return web.Response(status=200, text="ok")
