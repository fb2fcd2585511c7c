"""The Telegram chatbot (python-telegram-bot `Application`): safe places near you, and alerts where you choose.

    /start [en]        welcome (French by default; English on request or for English-speaking Telegram users);
                       re-enables the alerts suspended while the user had blocked the bot
    📍 a location       the 5 best-rated places nearby from the current-state view (best rating, then distance,
                       with the inspection date) and buttons "alert me here: 500 m / 1 km / 2 km"
    /near CODE         a button for alerts on a postcode (`75004`) or an INSEE commune (`commune 75104`)
    /digest 6h|off     the chat's alerts grouped every N hours (core/schedule.py; urgent ones at once)
    /quiet 22:00-07:00|off   held during those hours, in the subscriptions' timezone
    /list /stop /resume /forget /lang fr|en /help

The bot receives its two ports from runtime/: a SubscriptionStore (its writes reach the stream workers as the
API's do) and the dataset's CurrentView. Locations are rounded before anything else (telegram_chats.py).
Updates come by long polling (`Updater`) or by webhook (`webhook_app`, which checks Telegram's secret token
header in constant time); runtime/telegram.py runs either.
"""

from __future__ import annotations

import hmac
import logging
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from core.errors import SubscriptionError
from core.ports import CurrentView, SubscriptionStore
from core.schedule import DEFAULT_TIMEZONE, digest_option, quiet_option
from notifiers.telegram import DEFAULT_BASE_URL
from notifiers.telegram_chats import RADII, ChatSubscriptions, Choice, parse_code, round_point, safest, subscription_for
from notifiers.telegram_texts import LANGS, area_text, distance, lang_of, places_html, subscriptions_html, t

log = logging.getLogger(__name__)
# python-telegram-bot 22 warns on every flood-control error unless durations are opted in to timedelta (its next
# major version's behaviour); retry_after_s reads both.
os.environ.setdefault("PTB_TIMEDELTA", "true")

Context = ContextTypes.DEFAULT_TYPE
App = Application[Any, Any, Any, Any, Any, Any]
ALLOWED_UPDATES = ("message", "callback_query")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_UPDATE_BYTES = 1024 * 1024
COMMANDS = ("start", "near", "list", "stop", "resume", "forget", "lang", "help", "digest", "quiet")


@dataclass(frozen=True, slots=True)
class BotConfig:
    token: str
    base_url: str = DEFAULT_BASE_URL
    polling: bool = True  # False: updates come through `webhook_app`


class VigieBot:
    """The handlers, over the two ports."""

    def __init__(self, store: SubscriptionStore, view: CurrentView) -> None:
        self.chats = ChatSubscriptions(store)
        self.view = view

    def install(self, app: App) -> None:
        for name in COMMANDS:
            app.add_handler(CommandHandler(name, getattr(self, f"on_{name}")))
        app.add_handler(MessageHandler(filters.LOCATION, self.on_location))
        app.add_handler(CallbackQueryHandler(self.on_button))
        app.add_handler(MessageHandler(filters.ALL, self.on_help))
        app.add_error_handler(self.on_error)

    @staticmethod
    def lang(update: Update, context: Context) -> str:
        chosen = context.chat_data.get("lang") if context.chat_data is not None else None
        user = update.effective_user
        return lang_of(chosen, user.language_code if user else None)

    @staticmethod
    def _chat(update: Update) -> tuple[int, Message]:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None:
            raise ValueError("an update without a chat")
        return chat.id, message

    async def _set_lang(self, update: Update, context: Context, requested: str) -> str:
        chat_id, _ = self._chat(update)
        if context.chat_data is not None:
            context.chat_data["lang"] = requested
        await self.chats.relabel(chat_id, requested)
        return requested

    async def on_start(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        requested = (context.args or [""])[0].lower()
        lang = await self._set_lang(update, context, requested) if requested in LANGS else self.lang(update, context)
        keyboard = ReplyKeyboardMarkup([[KeyboardButton(t(lang, "share"), request_location=True)]],
                                       resize_keyboard=True)
        await message.reply_text(t(lang, "welcome"), parse_mode=ParseMode.HTML, reply_markup=keyboard)
        if back := await self.chats.unblocked(chat_id):
            await message.reply_text(t(lang, "back", n=len(back)), parse_mode=ParseMode.HTML)

    async def on_location(self, update: Update, context: Context) -> None:
        _, message = self._chat(update)
        if message.location is None:
            return
        point = round_point(message.location.latitude, message.location.longitude)  # the raw point stops here
        lang = self.lang(update, context)
        found, radius = await safest(self.view, point)
        buttons = [InlineKeyboardButton(distance(r), callback_data=Choice.circle(point, r).data()) for r in RADII]
        await message.reply_text(places_html(found, radius, lang), parse_mode=ParseMode.HTML)
        await message.reply_text(t(lang, "alert_me"), reply_markup=InlineKeyboardMarkup([buttons]))

    async def on_near(self, update: Update, context: Context) -> None:
        _, message = self._chat(update)
        lang, area = self.lang(update, context), parse_code(" ".join(context.args or []))
        if area is None:
            await message.reply_text(t(lang, "bad_code"))
            return
        label = area_text(area, lang)
        button = InlineKeyboardButton(t(lang, "button_code", area=label), callback_data=Choice(area).data())
        await message.reply_text(t(lang, "alert_code", area=label), parse_mode=ParseMode.HTML,
                                 reply_markup=InlineKeyboardMarkup([[button]]))

    async def on_button(self, update: Update, context: Context) -> None:
        query, chat = update.callback_query, update.effective_chat
        if query is None or chat is None:
            return
        lang = self.lang(update, context)
        try:
            choice = Choice.parse(query.data or "")
        except ValueError:
            await query.answer(t(lang, "expired"), show_alert=True)
            return
        added = await self.chats.add(subscription_for(chat.id, choice, lang))
        label = area_text(choice.area, lang)
        await query.answer("✓" if added else None)
        await context.bot.send_message(chat.id, t(lang, "subscribed" if added else "already", area=label),
                                       parse_mode=ParseMode.HTML)

    async def on_list(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        lang = self.lang(update, context)
        await message.reply_text(subscriptions_html(await self.chats.of(chat_id), lang), parse_mode=ParseMode.HTML)

    async def on_stop(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        paused = await self.chats.pause(chat_id)
        await message.reply_text(t(self.lang(update, context), "stopped", n=len(paused)), parse_mode=ParseMode.HTML)

    async def on_resume(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        resumed = await self.chats.resume(chat_id)
        await message.reply_text(t(self.lang(update, context), "resumed", n=len(resumed)), parse_mode=ParseMode.HTML)

    async def on_digest(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        lang = self.lang(update, context)
        try:
            hours = digest_option(" ".join(context.args or []) or "?")
        except SubscriptionError:
            await message.reply_text(t(lang, "bad_digest"))
            return
        n = len(await self.chats.of(chat_id))
        await self.chats.digest(chat_id, hours)
        text = t(lang, "digest_set", n=n, hours=hours) if hours else t(lang, "digest_off", n=n)
        await message.reply_text(text if n else t(lang, "empty"), parse_mode=ParseMode.HTML)

    async def on_quiet(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        lang = self.lang(update, context)
        try:
            window = quiet_option(" ".join(context.args or []) or "?")
        except SubscriptionError:
            await message.reply_text(t(lang, "bad_quiet"))
            return
        mine = await self.chats.of(chat_id)
        await self.chats.quiet(chat_id, window)
        zone = mine[0].timezone if mine else DEFAULT_TIMEZONE
        text = t(lang, "quiet_set", n=len(mine), window=window, timezone=zone) if window else \
            t(lang, "quiet_off", n=len(mine))
        await message.reply_text(text if mine else t(lang, "empty"), parse_mode=ParseMode.HTML)

    async def on_forget(self, update: Update, context: Context) -> None:
        chat_id, message = self._chat(update)
        lang = self.lang(update, context)
        deleted = await self.chats.forget(chat_id)
        if context.chat_data is not None:
            context.chat_data.clear()
        await message.reply_text(t(lang, "forgot", n=deleted), parse_mode=ParseMode.HTML)

    async def on_lang(self, update: Update, context: Context) -> None:
        _, message = self._chat(update)
        requested = (context.args or [""])[0].lower()
        lang = await self._set_lang(update, context, requested) if requested in LANGS else self.lang(update, context)
        await message.reply_text(t(lang, "lang"))

    async def on_help(self, update: Update, context: Context) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(t(self.lang(update, context), "help"))

    async def on_error(self, update: object, context: Context) -> None:
        """Log the failure, never the update (it may hold a location)."""
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram update %s failed: %r", update_id, context.error, exc_info=context.error)


def build_application(config: BotConfig, store: SubscriptionStore, view: CurrentView) -> App:
    """The bot's Application; `initialize`, `start` and the updates' source are the caller's (runtime/)."""
    # two polling connections: the long poll cancelled at stop may hold one while the final getUpdates confirms
    builder = ApplicationBuilder().token(config.token).base_url(config.base_url).get_updates_connection_pool_size(2)
    if not config.polling:
        builder = builder.updater(None)
    app: App = builder.build()
    VigieBot(store, view).install(app)
    return app


def webhook_app(app: App, secret: str, path: str = "/telegram") -> web.Application:
    """An aiohttp application receiving Telegram's webhook POSTs on `path`; a wrong secret token gets 403."""
    if not secret:
        raise ValueError("a webhook needs a secret token (VIGIE_TELEGRAM_WEBHOOK_SECRET)")
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("telegram webhook call with a wrong secret token refused")
            return web.Response(status=403, text="wrong secret token")
        try:
            update = Update.de_json(await request.json(), app.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400, text="not a Telegram update")
        await app.update_queue.put(update)
        return web.Response(text="ok")

    server = web.Application(client_max_size=MAX_UPDATE_BYTES)
    server.router.add_post(path, receive)
    return server
