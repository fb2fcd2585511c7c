"""The demo's Telegram conversation: someone near the Hôtel de Ville asks the bot for safe places and subscribes.

The bot is the production one (python-telegram-bot, `runtime.telegram.host_bot`) on the demo's own store and
current-state view; only the Bot API is the local stand-in, and the user's messages are injected into it.
"""

from __future__ import annotations

import asyncio

from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel

from core.geo import Point
from runtime.demo.telegram_api import FakeTelegramApi, FakeUser, Sent
from runtime.embedded import Embedded
from runtime.telegram import DATASET, host_bot

USER = FakeUser(31337, "Camille", "fr")


async def _answers(api: FakeTelegramApi, seen: int, count: int) -> list[Sent]:
    await api.wait_for(lambda a: len(a.to(USER.id)) >= seen + count, "the bot's answer", timeout=30)
    return api.to(USER.id)[seen:seen + count]


async def _talk(api: FakeTelegramApi, point: Point) -> list[str]:
    """The conversation, as a transcript."""
    transcript = ["👤 /start"]
    await api.say(USER, "/start")
    transcript += [f"🤖 {m.text}" for m in await _answers(api, 0, 1)]
    transcript.append(f"👤 📍 {point.lat:.5f}, {point.lon:.5f} (shared location)")
    await api.share_location(USER, point.lat, point.lon)
    places, buttons = await _answers(api, 1, 2)
    labels = " | ".join(label for label, _ in buttons.buttons())
    transcript += [f"🤖 {places.text}", f"🤖 {buttons.text} [{labels}]"]
    label, data = buttons.buttons()[1]
    transcript.append(f"👤 taps «{label}» (button data {data}: the rounded point only)")
    await api.tap(USER, buttons, data)
    transcript += [f"🤖 {m.text}" for m in await _answers(api, 3, 1)]
    return transcript


async def telegram_conversation(vigie: Embedded, console: Console, point: Point) -> None:
    """Run the bot against the stand-in for one conversation and print its transcript and the stored subscription."""
    api = FakeTelegramApi()
    await api.start()
    settings = vigie.settings.model_copy(update={
        "telegram_bot_token": SecretStr(api.token), "telegram_api_url": api.base_url, "telegram_poll_timeout": 1.0})
    stop = asyncio.Event()
    bot = asyncio.create_task(host_bot(settings, vigie.subscriptions, await vigie.processor.view(DATASET), stop))
    try:
        transcript = await _talk(api, point)
    finally:
        stop.set()
        await bot
        await api.close()
    stored = [s for s in await vigie.subscriptions.all() if s.destination == f"tg://{USER.id}"]
    transcript.append("💾 stored: " + ", ".join(f"{s.id} → {s.area}" for s in stored))
    console.print(Panel("\n\n".join(transcript), title="Telegram conversation (local Bot API stand-in)"))
