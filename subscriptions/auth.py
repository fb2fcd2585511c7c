"""Who is calling the API, what they may do, and how fast: tenants' API keys behind `Authorization: Bearer`.

    Bearer vk_…          a tenant's key (subscriptions/keys.py): its tenant and scopes, if not revoked
    Bearer <api_token>   the operator's token (VIGIE_API_TOKEN): tenant "" (what the CLI and bots create)
    nothing              only while no key and no token exist, and runtime/ serves on loopback only:
                         tenant "" with every scope (a developer's machine); once a key exists, 401

Scopes: GET and HEAD need `read`, every other method `write`. Each key (or the anonymous caller) gets
`rate` requests per second, `burst` at once (GCRA, in this process: each API replica counts on its own),
beyond which the API answers 429 with Retry-After.

Errors are Problems (RFC 9457), raised here and rendered by `problems`:

    401 Unauthorized    missing, malformed, unknown or revoked key (with WWW-Authenticate: Bearer)
    403 Forbidden       the key lacks the scope
    429 Too Many Requests
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from subscriptions.keys import KeyStore, key_id_of, verify

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An RFC 9457 problem; the middleware turns it into an application/problem+json response."""

    def __init__(self, status: int, title: str, detail: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.body = {"type": f"/problems/{title.lower().replace(' ', '-')}", "title": title, "status": status,
                     "detail": detail, **extra}
        self.status = status
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, content_type=PROBLEM, headers=self.headers)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Problems, aiohttp's own errors (unknown route, 405, 413) and anything unexpected, all as problem+json."""
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return Problem(exc.status, exc.reason, exc.text or exc.reason, headers=allow).response()
    except Exception:  # a bug: logged with its traceback, answered without it
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return Problem(500, "Internal Server Error", "the server failed; the error is logged").response()


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    scopes: frozenset[str]
    key_id: str


OPERATOR = frozenset({"read", "write"})


class Auth:
    """Authenticates /v1 requests; `open_when_empty` (runtime/: loopback only) lets callers in until a key exists."""

    def __init__(self, keys: KeyStore | None, *, token: str | None = None, open_when_empty: bool = False,
                 rate: float = 10.0, burst: float = 50.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._token = token
        self._open = open_when_empty and not token
        self._interval, self._burst = 1.0 / rate, burst
        self._clock = clock
        self._tat: dict[str, float] = {}

    async def caller(self, request: web.Request) -> Caller:
        header = request.headers.get("Authorization", "")
        if not header:
            if await self._anonymous_allowed():
                return Caller("", OPERATOR, "anonymous")
            raise _unauthorized("send Authorization: Bearer <API key>")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _unauthorized("only Authorization: Bearer <API key> is accepted")
        return await self._identify(given.strip())

    async def _anonymous_allowed(self) -> bool:
        if self._open and self._keys is not None and await self._keys.all():
            self._open = False  # a key exists now: no more anonymous access, for good
        return self._open

    async def _identify(self, given: str) -> Caller:
        if self._token and hmac.compare_digest(given.encode(), self._token.encode()):
            return Caller("", OPERATOR, "token")
        key_id = key_id_of(given)
        stored = None if key_id is None or self._keys is None else await self._keys.get(key_id)
        if stored is None or not verify(stored, given) or stored.revoked:
            raise _unauthorized("unknown or revoked API key")
        return Caller(stored.tenant, stored.scopes, stored.id)

    def admit(self, caller: Caller, method: str, path: str = "") -> None:
        """403 without the scope `method` needs (a POST in SAFE_POSTS needs read), 429 beyond the caller's rate."""
        scope = "read" if method in ("GET", "HEAD") or (method == "POST" and path in SAFE_POSTS) else "write"
        if scope not in caller.scopes and not (scope == "read" and "write" in caller.scopes):
            raise Problem(403, "Forbidden", f"this API key has no {scope} scope")
        now = self._clock()
        tat = max(self._tat.get(caller.key_id, now), now) + self._interval
        wait = tat - self._burst * self._interval - now
        if wait > 0:
            raise Problem(429, "Too Many Requests", f"at most {1 / self._interval:g} requests per second per key",
                          headers={"Retry-After": str(math.ceil(wait))})
        self._tat[caller.key_id] = tat


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="vigie"'})


AUTH: web.AppKey[Auth] = web.AppKey("auth")
CALLER: web.RequestKey[Caller] = web.RequestKey("caller", Caller)


SAFE_POSTS = frozenset({"/v1/subscriptions/preview"})  # POSTs that change nothing: a read key may send them


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1 request: who (`caller_of`), may they, not too fast."""
    if request.path.startswith("/v1/"):
        auth = request.app[AUTH]
        caller = await auth.caller(request)
        auth.admit(caller, request.method, request.path)
        request[CALLER] = caller
    return await handler(request)


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]
