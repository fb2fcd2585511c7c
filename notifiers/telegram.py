"""`tg://[BOT_TOKEN@]CHAT_ID`: an HTML message sent with python-telegram-bot's `Bot.send_message`.

CHAT_ID is a numeric chat id (a private chat's id is the user's id; groups are negative) or a public
channel's `@username`. Without a token in the URL the deployment's bot token is used (`TELEGRAM_BOT_TOKEN`);
`base_url` points the same code at the local stand-in (runtime/demo/telegram_api.py) in tests and demos.

This module is pure (parsing, masking, the message's HTML); sending lives in `telegram_channel.py`, imported
by `build` only, so `tg://` destinations validate without the optional dependency (`vigie[telegram]`).

Bot API errors → DeliveryError (telegram_channel.api_error): `RetryAfter` (429) is retriable after its
`retry_after`; network errors, timeouts and 5xx are retriable; `Forbidden` (the user blocked the bot, or
the bot was removed from the group) and `chat not found` are not, and the destination is reported refused
(`Options.on_refused`): runtime/ disables its subscriptions with the reason, so they are not retried forever.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from core import render, slack_blocks
from core.errors import DeliveryError, SubscriptionError
from core.model import Change, Delivery, Op
from core.ports import Channel
from notifiers.base import MASK, Options, Plugin, split_scheme

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
BLOCKED = "the user blocked the bot"  # the refusal recorded on a chat's subscriptions; /start clears it
INSTALL_HINT = "python-telegram-bot is not installed: pip install 'vigie[telegram]'"
_CHAT_ID = re.compile(r"-?\d{1,20}")
_CHANNEL = re.compile(r"@[A-Za-z][A-Za-z0-9_]{4,31}")
_BOT_TOKEN = re.compile(r"\d{3,15}:[A-Za-z0-9_\-]{30,}")
RATING_DOTS = {1: "🟢", 2: "🟡", 3: "🟠", 4: "🔴"}
_MERGED = {"fr": "{n} alertes Vigie", "en": "{n} Vigie alerts"}
_WORDS = {
    "fr": {"result": "Résultat", "inspected": "Contrôle du", "changed": "Modifié", "record": "Fiche officielle",
           "away": "à {d} du point suivi"},
    "en": {"result": "Result", "inspected": "Inspected on", "changed": "Changed", "record": "Official record",
           "away": "{d} from the watched point"},
}


@dataclass(frozen=True, slots=True)
class TelegramTarget:
    chat: str  # "123456789", "-1001234567890" or "@channelname"
    token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> TelegramTarget:
        scheme, rest = split_scheme(url)
        if scheme != "tg":
            raise SubscriptionError(f"not a telegram destination: {scheme}://")
        token, at, chat = rest.rstrip("/").rpartition("@") if not rest.startswith("@") else ("", "", rest)
        if at and not _BOT_TOKEN.fullmatch(token):  # never echo the token back: it is a secret
            raise SubscriptionError("telegram token must look like 123456:ABC… before the @ in tg://TOKEN@CHAT_ID")
        if at and chat and not chat.startswith("-") and not chat.isdigit():
            chat = f"@{chat}"  # tg://TOKEN@@channel is awkward: accept tg://TOKEN@channel too
        if not (_CHAT_ID.fullmatch(chat) or _CHANNEL.fullmatch(chat)):
            raise SubscriptionError(
                f"telegram destination needs a chat id or @channel: tg://CHAT_ID or tg://@channel, got {chat!r}")
        return cls(chat, token or None)

    def url(self, privacy: bool = True) -> str:
        if self.token is None:
            return f"tg://{self.chat}"
        token = f"{self.token.partition(':')[0]}:{MASK}" if privacy else self.token
        return f"tg://{token}@{self.chat}"

    @property
    def chat_id(self) -> int | str:
        """What the Bot API takes: an integer id, or the `@username` of a public channel."""
        return self.chat if self.chat.startswith("@") else int(self.chat)


def destination(chat_id: int) -> str:
    """The destination of a chat the bot talks to."""
    return f"tg://{chat_id}"


def _lang(lang: str) -> str:
    return lang if lang in _WORDS else "fr"


def rating_html(rating: int | None, lang: str, before: int | None = None) -> str:
    """`🟠 <b>A améliorer</b>`, with the previous rating when it changed: `Satisfaisant → A améliorer`."""
    now = f"{RATING_DOTS.get(rating or 0, '⚪')} <b>{html.escape(render.rating_label(rating, lang))}</b>"
    if before is None or before == rating:
        return now
    return f"{html.escape(render.rating_label(before, lang))} → {now}"


def distance_text(metres: float) -> str:
    return f"{metres:.0f} m" if metres < 1000 else f"{metres / 1000:.1f} km".replace(".0 km", " km")


def alert_html(change: Change, lang: str = "fr", *, link: str | None = None, away_m: float | None = None) -> str:
    """The alert as Telegram HTML: what happened, the place (and how far from the watched point), its activity,
    the result and how it changed, the inspection date, the link to the official record when there is one."""
    lang, record = _lang(lang), change.current
    words, colon = _WORDS[lang], " : " if lang == "fr" else ": "
    lines = [f"<b>{html.escape(render.headline(change, lang))}</b>"]
    if change.op is Op.NOTICE:  # about the dataset: no place, rating or record link
        return "\n".join([*lines, html.escape(render.notice_text(change, lang))])
    if where := render.place(record):
        lines.append(html.escape(where))
    if away_m is not None:
        lines.append(words["away"].format(d=distance_text(away_m)))
    if activity := record.fields.get("activity"):
        lines.append(f"<i>{html.escape(str(activity))}</i>")
    if record.rating is not None:
        before = change.before.rating if change.before is not None and change.after is not None else None
        lines.append(f"{words['result']}{colon}{rating_html(record.rating, lang, before)}")
    if when := record.fields.get("date_inspection"):
        lines.append(f"{words['inspected']} {html.escape(str(when))}")
    if change.changed and change.op.value == "updated":
        lines.append(f"{words['changed']}{colon}{html.escape(', '.join(change.changed))}")
    if link:
        lines.append(f'<a href="{html.escape(link, quote=True)}">{words["record"]}</a>')
    return "\n".join(lines)


MAX_MERGED = 10  # alerts per merged message: well under Telegram's 4,096 characters


def digest_html(deliveries: Sequence[Delivery]) -> str:
    """Several alerts to one chat as one HTML message, grouped by area as Slack's (`slack_blocks.area_name`):
    a heading, then per area one line per alert (name linked to its official record, what changed, distance)."""
    lang = _lang(deliveries[0].subscription.lang)
    groups: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        groups.setdefault(slack_blocks.area_name(delivery), []).append(delivery)
    lines = [f"<b>{html.escape(_MERGED[lang].format(n=len(deliveries)))}</b>"]
    for name, group in groups.items():
        lines += ["", f"<b>{html.escape(name)}</b>", *(_digest_line(d, lang) for d in group)]
    return "\n".join(lines)


def _digest_line(delivery: Delivery, lang: str) -> str:
    change = delivery.change
    if change.op is Op.NOTICE:
        return f"• {html.escape(render.notice_text(change, lang))}"
    record, url = change.current, slack_blocks.official_url(change.current)
    name = html.escape(render.title(record))
    named = f'<a href="{html.escape(url, quote=True)}">{name}</a>' if url else f"<b>{name}</b>"
    far = slack_blocks.distance_m(delivery)
    where = f" · {distance_text(far)}" if far is not None else ""
    return f"• {named} — {html.escape(slack_blocks.what_changed(change, lang))}{where}"


def build(options: Options) -> Channel:
    try:
        from notifiers.telegram_channel import TelegramChannel  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise DeliveryError(INSTALL_HINT, retriable=False) from exc
    return TelegramChannel(token=options.telegram_token, base_url=options.telegram_base_url,
                           timeout=options.timeout, on_refused=options.on_refused)


PLUGIN = Plugin("tg", ("tg",), TelegramTarget.parse, build)
