"""A local stand-in for the Telegram Bot API, faithful enough for python-telegram-bot's `Bot(base_url=…)`.

Serves `/bot<TOKEN>/<method>` (give `base_url` to the bot: it ends in `/bot`, the token is appended) with
Telegram's envelope: `{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …}`.
Parameters are read as Telegram reads them: query string, form (complex values JSON-encoded) or JSON body.

    getMe, getUpdates (long polling: offset confirms, timeout waits), sendMessage (HTML checked, 4096 chars,
    callback_data ≤ 64 bytes), answerCallbackQuery, editMessageText, editMessageReplyMarkup,
    setWebhook / deleteWebhook / getWebhookInfo (updates are then POSTed with the secret token header),
    setMyCommands, deleteMyCommands

Users are injected as real update JSON: `say(user, text)` (bot commands get their entity), `share_location`,
`tap(user, message, data)`. `block(chat)` makes the chat answer 403 `Forbidden: bot was blocked by the user`;
`rate_limit_next(s)` answers the next call 429 with `parameters.retry_after`. What the bot sent is kept in
`sent`; `wait_for(predicate)` waits for it without sleeping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from runtime.demo.telegram_html import html_problem, plain_text

DEFAULT_TOKEN = "7000001:vigie-demo-token-0123456789abcdef"  # noqa: S105 - the stand-in's own token
BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "Vigie", "username": "vigie_demo_bot",
            "can_join_groups": False, "can_read_all_group_messages": False, "supports_inline_queries": False}
JSON_PARAMS = frozenset({"reply_markup", "allowed_updates", "link_preview_options", "entities", "commands"})
BLOCKED = "Forbidden: bot was blocked by the user"
Json = dict[str, Any]
Handler = Callable[[Json], Awaitable[web.Response]]


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass(frozen=True, slots=True)
class FakeUser:
    id: int
    first_name: str = "Camille"
    language_code: str | None = "fr"

    def to_json(self) -> Json:
        found: Json = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        return found | ({"language_code": self.language_code} if self.language_code else {})

    def chat(self) -> Json:
        return {"id": self.id, "type": "private", "first_name": self.first_name}


@dataclass(slots=True)
class Sent:
    """A message the bot sent (and its later edits)."""

    message_id: int
    chat_id: int
    text: str  # as the user sees it: tags stripped, entities decoded
    html: str  # as sent
    reply_markup: Json | None
    raw: Json = field(default_factory=dict)

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of every inline button."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


class FakeTelegramApi:
    def __init__(self, *, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self.sent: list[Sent] = []
        self.answered: list[Json] = []
        self.requests: list[tuple[str, Json]] = []
        self.blocked: set[int] = set()
        self.known: set[int] = set()  # chats that talked to the bot (others: "chat not found")
        self.webhook: Json = {}
        self.rejected_pushes = 0
        self._updates: list[Json] = []
        self._pushed = 0
        self._faults: list[ApiError] = []
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0: any free port); the base URL for `Bot(base_url=…)`, ending in `/bot`."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.base_url = f"http://{host}:{self._runner.addresses[0][1]}/bot"
        return self.base_url

    async def close(self) -> None:
        async with self._changed:  # long polls in flight answer now, not at their timeout
            self._closing = True
            self._changed.notify_all()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- what users do ---------------------------------------------------------------------------------------

    async def say(self, user: FakeUser, text: str) -> int:
        """`user` sends `text` in their private chat with the bot; the update id."""
        message = self._message(user, text=text)
        if text.startswith("/"):
            message["entities"] = [{"offset": 0, "length": len(text.split(maxsplit=1)[0]), "type": "bot_command"}]
        return await self._inject({"message": message})

    async def share_location(self, user: FakeUser, lat: float, lon: float) -> int:
        return await self._inject({"message": self._message(user, location={"latitude": lat, "longitude": lon})})

    async def tap(self, user: FakeUser, message: Sent, data: str) -> int:
        """`user` taps the inline button carrying `data` under the bot's `message`."""
        query = {"id": str(next(self._ids) * 7919), "from": user.to_json(), "message": message.raw,
                 "chat_instance": f"ci{user.id}", "data": data}
        return await self._inject({"callback_query": query})

    def block(self, chat_id: int) -> None:
        self.blocked.add(chat_id)

    def rate_limit_next(self, retry_after: int = 3) -> None:
        self._faults.append(ApiError(429, f"Too Many Requests: retry after {retry_after}",
                                     {"retry_after": retry_after}))

    def to(self, chat_id: int) -> list[Sent]:
        return [m for m in self.sent if m.chat_id == chat_id]

    async def wait_for(self, predicate: Callable[[FakeTelegramApi], bool], what: str,
                       timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a deadline is the point
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: predicate(self))
        except TimeoutError:
            shown = "\n".join(f"  {m.chat_id}: {m.text[:80]!r}" for m in self.sent[-5:])
            raise TimeoutError(f"{what}: not within {timeout}s; last messages:\n{shown}") from None

    async def wait_for_message(self, chat_id: int, after: int, timeout: float = 10.0) -> Sent:  # noqa: ASYNC109
        """The first message to `chat_id` beyond its first `after` ones."""
        await self.wait_for(lambda api: len(api.to(chat_id)) > after, f"message {after + 1} to {chat_id}", timeout)
        return self.to(chat_id)[after]

    def _message(self, user: FakeUser, **content: Any) -> Json:
        self.known.add(user.id)
        return {"message_id": next(self._message_ids), "from": user.to_json(), "chat": user.chat(),
                "date": int(time.time()), **content}

    async def _inject(self, update: Json) -> int:
        update_id = next(self._ids)
        async with self._changed:
            self._updates.append({"update_id": update_id, **update})
            self._changed.notify_all()
        if self.webhook.get("url"):
            await self._push_pending()
        return update_id

    async def _push_pending(self) -> None:
        """Webhook mode: POST the updates not pushed yet, in order, with the secret token header."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        while self._pushed < len(self._updates):
            update = self._updates[self._pushed]
            headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook["secret_token"]} \
                if self.webhook.get("secret_token") else {}
            async with self._session.post(self.webhook["url"], json=update, headers=headers) as response:
                if response.status >= 300:
                    self.rejected_pushes += 1
            self._pushed += 1

    # -- the HTTP API ----------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        method, params = request.match_info["method"], await _parameters(request)
        self.requests.append((method, params))
        try:
            return await self._handler(request.match_info["token"], method)(params)
        except ApiError as exc:
            body: Json = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
            return web.json_response(body, status=exc.code)

    def _handler(self, token: str, method: str) -> Handler:
        if token != self.token:
            raise ApiError(401, "Unauthorized")
        if self._faults:
            raise self._faults.pop(0)
        handler = self._handlers().get(method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        return handler

    def _handlers(self) -> dict[str, Handler]:
        return {"getme": self._get_me, "getupdates": self._get_updates, "sendmessage": self._send_message,
                "answercallbackquery": self._answer, "editmessagetext": self._edit,
                "editmessagereplymarkup": self._edit, "setwebhook": self._set_webhook,
                "deletewebhook": self._delete_webhook, "getwebhookinfo": self._webhook_info,
                "setmycommands": _true, "deletemycommands": _true}

    async def _get_me(self, params: Json) -> web.Response:
        return _ok(BOT_USER)

    async def _get_updates(self, params: Json) -> web.Response:
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset, limit = int(params.get("offset") or 0), min(100, int(params.get("limit") or 100))
        timeout = float(params.get("timeout") or 0)
        async with self._changed:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones are gone
            if not self._updates and timeout > 0:
                try:
                    async with asyncio.timeout(timeout):
                        await self._changed.wait_for(lambda: bool(self._updates) or self._closing)
                except TimeoutError:
                    pass
            return _ok(self._updates[:limit])

    async def _send_message(self, params: Json) -> web.Response:
        chat_id, text = self._chat(params), str(params.get("text") or "")
        html = text if params.get("parse_mode", "").upper() == "HTML" else None
        _check_text(text, html, params.get("reply_markup"))
        shown = plain_text(html) if html is not None else text
        raw: Json = {"message_id": next(self._message_ids), "from": BOT_USER, "date": int(time.time()),
                     "chat": {"id": chat_id, "type": "private"}, "text": shown}
        if "inline_keyboard" in (params.get("reply_markup") or {}):  # Telegram returns inline keyboards only
            raw["reply_markup"] = params["reply_markup"]
        async with self._changed:
            self.sent.append(Sent(raw["message_id"], chat_id, shown, text, params.get("reply_markup"), raw))
            self._changed.notify_all()
        return _ok(raw)

    async def _answer(self, params: Json) -> web.Response:
        async with self._changed:
            self.answered.append(params)
            self._changed.notify_all()
        return _ok(True)

    async def _edit(self, params: Json) -> web.Response:
        chat_id, message_id = self._chat(params), int(params.get("message_id") or 0)
        message = next((m for m in self.sent if m.chat_id == chat_id and m.message_id == message_id), None)
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if "text" in params:
            html = params["text"] if str(params.get("parse_mode", "")).upper() == "HTML" else None
            _check_text(params["text"], html, params.get("reply_markup"))
            message.html, message.text = params["text"], plain_text(html) if html else params["text"]
        async with self._changed:
            message.reply_markup = params.get("reply_markup")
            message.raw = {k: v for k, v in {**message.raw, "text": message.text,
                                             "reply_markup": message.reply_markup}.items() if v is not None}
            self._changed.notify_all()
        return _ok(message.raw)

    async def _set_webhook(self, params: Json) -> web.Response:
        async with self._changed:
            self.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token")}
            self._changed.notify_all()
        return _ok(True)

    async def _delete_webhook(self, params: Json) -> web.Response:
        self.webhook = {}
        return _ok(True)

    async def _webhook_info(self, params: Json) -> web.Response:
        return _ok({"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                    "pending_update_count": len(self._updates) - self._pushed if self.webhook else 0})

    def _chat(self, params: Json) -> int:
        try:
            chat_id = int(params.get("chat_id", ""))
        except ValueError:
            raise ApiError(400, "Bad Request: chat not found") from None
        if chat_id in self.blocked:
            raise ApiError(403, BLOCKED)
        if chat_id not in self.known:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id


def _check_text(text: str, html: str | None, markup: Any) -> None:
    if not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if html is not None and (problem := html_problem(html)):
        raise ApiError(400, f"Bad Request: can't parse entities: {problem}")
    if len(plain_text(html) if html is not None else text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    for button in (b for row in rows for b in row):
        if not button.get("text") or len(button.get("callback_data", "").encode()) > 64:
            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


async def _parameters(request: web.Request) -> Json:
    """Parameters as Telegram reads them: query string, then a JSON or form body (complex values JSON)."""
    params: Json = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        params.update(body if isinstance(body, dict) else {})
    elif request.can_read_body:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for name in JSON_PARAMS & params.keys():
        if isinstance(params[name], str):
            params[name] = json.loads(params[name])
    return params


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


async def _true(params: Json) -> web.Response:
    return _ok(True)
