"""A local stand-in for the Slack Web API, faithful enough for slack_sdk's `AsyncWebClient(base_url=…)`.

Implements `chat.postMessage`, `auth.test` and `conversations.list` under `/api/`: bearer-token
auth (`not_authed`, `invalid_auth`), channels by id or name (`channel_not_found`,
`not_in_channel`, `is_archived`), a Block Kit shape check (`invalid_blocks`), and injected
faults: `rate_limit_next` (HTTP 429 + `Retry-After` + `ratelimited`) and `fail_next(status)`.

Incoming webhooks live under `/services/T…/B…/SECRET` (`add_hook(channel)` makes one): a JSON POST answers
`200 ok` as text, or Slack's text errors: `invalid_payload` (400), `invalid_token` (403, a revoked hook:
`revoke_hook`), `no_service` (404, an unknown hook), `channel_not_found` (404), `channel_is_archived` (410).

Every accepted message is kept in `messages`; `wait_for(n)` waits for them without sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DEFAULT_TOKEN = "xoxb-vigie-demo"  # noqa: S105 - the stand-in's own demo token, accepted nowhere else
DEFAULT_CHANNELS: Mapping[str, str] = {"C0VIGIE01": "vigie-alerts", "C0GENERAL": "general"}
BOT = {"team_id": "T0VIGIE", "team": "Vigie", "user_id": "U0VIGIE", "user": "vigie", "bot_id": "B0VIGIE"}
BLOCK_TYPES = frozenset({"header", "section", "context", "divider", "actions", "image", "rich_text", "markdown"})
TEXT_TYPES = frozenset({"plain_text", "mrkdwn"})
Json = dict[str, Any]
Handler = Callable[[web.Request, Json, str], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class SlackMessage:
    channel: str  # the channel id, even when posted by name
    text: str
    blocks: list[Json]
    token: str
    ts: str


def _text_problem(obj: Any, limit: int, types: frozenset[str] = TEXT_TYPES) -> str | None:
    if not isinstance(obj, dict) or obj.get("type") not in types or not isinstance(obj.get("text"), str):
        return f"expected a text object of type {'/'.join(sorted(types))}"
    return f"text longer than {limit}" if not 0 < len(obj["text"]) <= limit else None


def block_problem(block: Any) -> str | None:
    """What makes `block` invalid Block Kit, for the subset of block types Vigie sends; None when valid."""
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        return "unknown block type"
    kind = block["type"]
    if kind == "header":
        return _text_problem(block.get("text"), 150, frozenset({"plain_text"}))
    if kind == "section" and "fields" not in block:
        return _text_problem(block.get("text"), 3000)
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            return "context needs 1 to 10 elements"
        return next((p for e in elements if e.get("type") != "image" and (p := _text_problem(e, 3000))), None)
    return None


class FakeSlackApi:
    def __init__(self, *, tokens: Iterable[str] = (DEFAULT_TOKEN,), channels: Mapping[str, str] = DEFAULT_CHANNELS,
                 archived: Iterable[str] = (), not_member: Iterable[str] = ()) -> None:
        self.tokens = set(tokens)
        self.channels = dict(channels)  # id → name
        self.archived, self.not_member = set(archived), set(not_member)
        self.messages: list[SlackMessage] = []
        self.requests: list[tuple[str, Json]] = []  # (method, arguments) of every call, faults included
        self._faults: deque[tuple[int, Json, dict[str, str]]] = deque()  # status, body, headers
        self._changed = asyncio.Condition()
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.root_url = ""
        self.hooks: dict[str, str] = {}  # secret → channel id
        self.revoked_hooks: set[str] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: any free port); returns the base URL, ending in `/api/`."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._dispatch)
        app.router.add_post("/services/{team}/{bot}/{secret}", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.root_url = f"http://{host}:{bound[1]}"
        self.base_url = f"{self.root_url}/api/"
        return self.base_url

    def add_hook(self, channel: str, secret: str | None = None) -> str:
        """An incoming webhook posting to `channel` (an id); its URL as a `slack+http://` destination."""
        secret = secret or f"hook{next(self._seq):04d}secret{len(self.hooks):04d}"
        self.hooks[secret] = channel
        return f"slack+{self.root_url}/services/T0VIGIE/B0HOOK{len(self.hooks):03d}/{secret}"

    def revoke_hook(self, destination: str) -> None:
        self.revoked_hooks.add(destination.rpartition("/")[2])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def rate_limit_next(self, retry_after: int = 1) -> None:
        """The next call answers HTTP 429 `ratelimited` with `Retry-After: retry_after`."""
        self._faults.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}))

    def fail_next(self, status: int = 500, times: int = 1, *, error: str = "fatal_error") -> None:
        """The next `times` calls answer `status` with `{"ok": false, "error": error}`."""
        for _ in range(times):
            self._faults.append((status, {"ok": False, "error": error}, {}))

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[SlackMessage]:  # noqa: ASYNC109 - a deadline is the point
        """The first `n` messages, once they have arrived; TimeoutError after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.messages) >= n)
        except TimeoutError:
            raise TimeoutError(f"{len(self.messages)} of {n} Slack messages arrived within {timeout}s") from None
        return self.messages[:n]

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        self.requests.append((method, args))
        if self._faults:
            status, body, headers = self._faults.popleft()
            return web.json_response(body, status=status, headers=headers)
        handler = self._handlers().get(method)
        if handler is None:
            return _error("unknown_method")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or str(args.get("token", ""))
        if not token:
            return _error("not_authed")
        if token not in self.tokens:
            return _error("invalid_auth")
        return await handler(request, args, token)

    def _handlers(self) -> dict[str, Handler]:
        return {"chat.postMessage": self._post_message, "auth.test": self._auth_test,
                "conversations.list": self._conversations_list}

    def _channel_id(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        name = channel.removeprefix("#")
        return next((cid for cid, cname in self.channels.items() if cname == name), None)

    async def _post_message(self, request: web.Request, args: Json, token: str) -> web.Response:
        cid = self._channel_id(str(args.get("channel", "")))
        text, blocks = args.get("text") or "", args.get("blocks") or []
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return _error("invalid_blocks_format")
        problem = _message_problem(cid, text, blocks, self.archived, self.not_member)
        if problem or cid is None:
            return _error(problem or "channel_not_found")
        ts = f"{int(time.time())}.{next(self._seq):06d}"
        async with self._changed:
            self.messages.append(SlackMessage(cid, text, blocks, token, ts))
            self._changed.notify_all()
        message = {"type": "message", "subtype": "bot_message", "text": text, "blocks": blocks,
                   "bot_id": BOT["bot_id"], "ts": ts}
        return web.json_response({"ok": True, "channel": cid, "ts": ts, "message": message})

    async def _hook(self, request: web.Request) -> web.Response:
        secret = request.match_info["secret"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(("incoming-webhook", body if isinstance(body, dict) else {}))
        if self._faults:
            status, fault, headers = self._faults.popleft()
            return web.Response(status=status, text=str(fault.get("error", "")), headers=headers)
        cid = self.hooks.get(secret)
        problem = _hook_problem(cid, secret in self.revoked_hooks, body, self.archived)
        if problem is not None:
            return web.Response(status=problem[0], text=problem[1])
        return await self._record(str(cid), body.get("text") or "", body.get("blocks") or [], f"hook:{secret}")

    async def _record(self, cid: str, text: str, blocks: list[Json], token: str) -> web.Response:
        ts = f"{int(time.time())}.{next(self._seq):06d}"
        async with self._changed:
            self.messages.append(SlackMessage(cid, text, blocks, token, ts))
            self._changed.notify_all()
        return web.Response(text="ok")

    async def _auth_test(self, request: web.Request, args: Json, token: str) -> web.Response:
        return web.json_response({"ok": True, "url": "https://vigie.slack.com/", **BOT})

    async def _conversations_list(self, request: web.Request, args: Json, token: str) -> web.Response:
        channels = [{"id": cid, "name": name, "is_channel": True, "is_archived": cid in self.archived,
                     "is_member": cid not in self.not_member} for cid, name in self.channels.items()]
        return web.json_response({"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})


def _hook_problem(cid: str | None, revoked: bool, body: Any, archived: set[str]) -> tuple[int, str] | None:
    if revoked:
        return 403, "invalid_token"
    if cid is None:
        return 404, "no_service"
    if cid in archived:
        return 410, "channel_is_archived"
    if not isinstance(body, dict):
        return 400, "invalid_payload"
    blocks = body.get("blocks") or []
    if not isinstance(blocks, list) or len(blocks) > 50 or any(block_problem(b) for b in blocks):
        return 400, "invalid_blocks"
    return (400, "no_text") if not body.get("text") and not blocks else None


def _message_problem(cid: str | None, text: Any, blocks: Any, archived: set[str], outside: set[str]) -> str | None:
    if cid is None:
        return "channel_not_found"
    if cid in archived:
        return "is_archived"
    if cid in outside:
        return "not_in_channel"
    if not isinstance(blocks, list) or len(blocks) > 50 or any(block_problem(b) for b in blocks):
        return "invalid_blocks"
    if not text and not blocks:
        return "no_text"
    return "msg_too_long" if len(str(text)) > 40_000 else None


async def _arguments(request: web.Request) -> Json:
    """Arguments as slack_sdk sends them: query string, then a JSON or form-encoded body."""
    args: Json = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        args.update(body if isinstance(body, dict) else {})
    elif request.can_read_body:
        args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return args


def _error(code: str) -> web.Response:
    return web.json_response({"ok": False, "error": code})
