"""Sending `tg://` alerts with python-telegram-bot (the optional `vigie[telegram]` extra); see telegram.py.

    TelegramError                     → DeliveryError
    ├── RetryAfter (429)                retriable, retry_after = the flood wait Telegram asked for
    ├── Forbidden (403)                 not retriable; the destination is refused (blocked by the user, kicked)
    ├── InvalidToken (401, 404)         not retriable (the bot token is wrong)
    ├── ChatMigrated                    not retriable (the group became a supergroup with a new id)
    ├── NetworkError
    │   ├── BadRequest (400)            not retriable; `chat not found` also refuses the destination
    │   └── TimedOut, 5xx, resets       retriable
    └── anything else                   not retriable
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import warnings
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from core import slack_blocks
from core.errors import DeliveryError
from core.model import Delivery
from notifiers.base import DEFAULT_TIMEOUT, scrub, target_of
from notifiers.telegram import BLOCKED, DEFAULT_BASE_URL, MAX_MERGED, TelegramTarget, alert_html, digest_html

log = logging.getLogger(__name__)
# python-telegram-bot 22 warns on every flood-control error unless durations are opted in to timedelta (its next
# major version's behaviour); retry_after_s reads both.
os.environ.setdefault("PTB_TIMEDELTA", "true")

Refused = Callable[[str, str], Awaitable[None]]
POOL_SIZE = 32


def retry_after_s(exc: RetryAfter) -> float:
    """The flood wait in seconds, whichever way python-telegram-bot reports it (int now, timedelta later)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def refusal(exc: TelegramError) -> str | None:
    """Why the destination will never accept messages again, if the error says so."""
    message = exc.message.lower()
    if isinstance(exc, Forbidden):
        return BLOCKED if "blocked" in message else f"telegram refused: {exc.message}"
    if isinstance(exc, BadRequest) and "chat not found" in message:
        return "the chat does not exist or never talked to the bot"
    return None


def api_error(exc: TelegramError, where: str) -> DeliveryError:
    """Map a Bot API failure to a DeliveryError (see the module docstring)."""
    if isinstance(exc, RetryAfter):
        return DeliveryError(f"telegram flood control ({where})", retriable=True, retry_after=retry_after_s(exc))
    if isinstance(exc, Forbidden | InvalidToken | ChatMigrated | BadRequest):
        reason = "the bot token was rejected" if isinstance(exc, InvalidToken) else scrub(exc.message)
        return DeliveryError(f"telegram refused the message: {reason} ({where})", retriable=False)
    if isinstance(exc, NetworkError):
        return DeliveryError(f"telegram unreachable or failing ({where}): {scrub(exc.message)}", retriable=True)
    return DeliveryError(f"telegram error ({where}): {scrub(exc.message)}", retriable=False)


class TelegramChannel:
    """Sends with `Bot.send_message`; one Bot (and one HTTP connection pool) per bot token."""

    scheme = "tg"
    merge_limit = MAX_MERGED  # a chat's burst (or digest) goes out merged: Telegram allows ~1 message/s per chat

    def __init__(self, *, token: str | None = None, base_url: str = DEFAULT_BASE_URL,
                 timeout: float = DEFAULT_TIMEOUT, on_refused: Refused | None = None) -> None:
        self._token = token
        self._base_url = base_url
        self._timeout = timeout
        self._on_refused = on_refused
        self._bots: dict[str, tuple[Bot, HTTPXRequest]] = {}

    def _bot(self, token: str) -> Bot:
        if token not in self._bots:
            t = self._timeout
            request = HTTPXRequest(connection_pool_size=POOL_SIZE, read_timeout=t, write_timeout=t,
                                   connect_timeout=t, pool_timeout=t)
            self._bots[token] = (Bot(token, base_url=self._base_url, request=request), request)
        return self._bots[token][0]

    async def send(self, delivery: Delivery) -> None:
        record = delivery.change.current
        text = alert_html(delivery.change, delivery.subscription.lang, link=slack_blocks.official_url(record),
                          away_m=slack_blocks.distance_m(delivery))
        await self._send_text(delivery, text)

    async def send_merged(self, deliveries: Sequence[Delivery]) -> None:
        """Alerts to one chat as one message, grouped by area; it succeeds or fails for all of them."""
        if len(deliveries) == 1:
            await self.send(deliveries[0])
            return
        await self._send_text(deliveries[0], digest_html(deliveries))

    async def _send_text(self, delivery: Delivery, text: str) -> None:
        target = target_of(delivery, TelegramTarget.parse)
        token = target.token or self._token
        if not token:
            raise DeliveryError("no Telegram bot token: set TELEGRAM_BOT_TOKEN or use tg://TOKEN@CHAT_ID",
                                retriable=False)
        try:
            async with asyncio.timeout(self._timeout):
                await self._bot(token).send_message(
                    chat_id=target.chat_id, text=text, parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True))
        except TelegramError as exc:
            await self._refused(delivery, refusal(exc))
            raise api_error(exc, target.url()) from exc
        except TimeoutError as exc:
            raise DeliveryError(f"telegram did not answer within {self._timeout:g}s ({target.url()})",
                                retriable=True) from exc
        log.debug("sent %s to %s", delivery.key, target.url(), extra={
            "change_id": delivery.change.id, "subscription_id": delivery.subscription.id, "channel": self.scheme})

    async def _refused(self, delivery: Delivery, reason: str | None) -> None:
        """Report a destination that will never work again; a failure to record it is logged, not raised."""
        if reason is None or self._on_refused is None:
            return
        try:
            await self._on_refused(delivery.subscription.destination, reason)
        except Exception:  # the delivery's own error matters more; the next refusal tries again
            log.exception("could not disable the subscriptions of a refused telegram destination",
                          extra={"subscription_id": delivery.subscription.id, "channel": self.scheme})

    async def aclose(self) -> None:
        bots, self._bots = list(self._bots.values()), {}
        for _, request in bots:
            await request.shutdown()
