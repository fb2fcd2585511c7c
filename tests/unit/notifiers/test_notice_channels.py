"""Dataset notices on Telegram (valid HTML: headline in bold, then the notice's text) and on the console."""

from __future__ import annotations

import io

import pytest

from core import render
from core.geo import Circle, Point
from core.model import Delivery, Subscription
from notifiers import Channels
from notifiers.telegram import alert_html
from runtime.demo.telegram_html import html_problem, plain_text
from tests.unit.notices import NOTICES

CASES = [(kind, lang) for kind in sorted(NOTICES) for lang in ("fr", "en")]


@pytest.mark.parametrize(("kind", "lang"), CASES)
def test_telegram_html_of_a_notice(kind: str, lang: str) -> None:
    change = NOTICES[kind]
    body = alert_html(change, lang, link=None, away_m=None)
    assert html_problem(body) is None
    assert plain_text(body).splitlines() == [render.headline(change, lang), render.notice_text(change, lang)]
    assert body.startswith(f"<b>{render.headline(change, lang)}</b>\n")


@pytest.mark.parametrize(("kind", "lang"), CASES)
async def test_console_prints_a_notice(kind: str, lang: str) -> None:
    out = io.StringIO()
    channels = Channels(console_stream=out)
    await channels.send(Delivery.of(NOTICES[kind], Subscription("s1", Circle(Point(45.7, 4.8), 500), "console://",
                                                                lang=lang)))
    await channels.aclose()
    assert out.getvalue() == f"{render.headline(NOTICES[kind], lang)}\n{render.notice_text(NOTICES[kind], lang)}\n\n"
