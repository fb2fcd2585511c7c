"""tg:// destinations, the Telegram HTML, the bot's privacy rounding, button data and command parsing, as tables."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut

from core.errors import SubscriptionError
from core.geo import AdminArea, Circle, Point
from core.model import Change, Op
from notifiers import mask, validate_destination
from notifiers.telegram import BLOCKED, TelegramTarget, alert_html
from notifiers.telegram_channel import api_error, refusal
from notifiers.telegram_chats import Choice, parse_code, round_point, subscription_for
from notifiers.telegram_texts import lang_of, places_html, subscriptions_html
from runtime.demo.telegram_html import html_problem, plain_text
from tests.unit.notifiers.support import T0, change, record, subscription

TOKEN = "123456789:AAHk-vigie_TEST-token-0123456789abcdef"


@pytest.mark.parametrize(("url", "normalised", "chat_id"), [
    ("tg://123456789", "tg://123456789", 123456789),
    ("TG://-1001234567890/", "tg://-1001234567890", -1001234567890),
    ("tg://@vigie_paris", "tg://@vigie_paris", "@vigie_paris"),
    (f"tg://{TOKEN}@42", f"tg://{TOKEN}@42", 42),
    (f"tg://{TOKEN}@vigie_paris", f"tg://{TOKEN}@@vigie_paris", "@vigie_paris"),
])
def test_valid_destinations(url: str, normalised: str, chat_id: int | str) -> None:
    assert validate_destination(url) == normalised
    assert TelegramTarget.parse(url).chat_id == chat_id


@pytest.mark.parametrize(("url", "message"), [
    ("tg://", "needs a chat id"),
    ("tg://12ab", "needs a chat id"),
    ("tg://@abc", "needs a chat id"),
    ("tg://not-a-token@42", "token must look like"),
])
def test_invalid_destinations_say_why_without_echoing_a_token(url: str, message: str) -> None:
    with pytest.raises(SubscriptionError, match=message) as raised:
        validate_destination(url)
    assert "not-a-token" not in str(raised.value)


def test_the_token_is_masked() -> None:
    assert mask(f"tg://{TOKEN}@42") == "tg://123456789:***@42"
    assert TOKEN not in repr(TelegramTarget.parse(f"tg://{TOKEN}@42"))


def downgrade(name: str = "Chez <Fatou> & Fils") -> Change:
    before = dataclasses.replace(record(rating=2, name=name), fingerprint="before")
    after = record(rating=3, name=name)
    return Change("c1", "alimconfiance", after.key, Op.UPDATED, ("downgrade", "updated"), before, after,
                  ("rating_label",), T0, "v2")


@pytest.mark.parametrize(("lang", "lines"), [
    ("fr", ["Note en baisse : Chez <Fatou> & Fils", "3 quai Saint-Antoine, 69002 Lyon", "Boulangerie-Pâtisserie",
            "Résultat : Satisfaisant → 🟠 A améliorer", "Contrôle du 2026-02-27", "Modifié : rating_label"]),
    ("en", ["Rating downgraded: Chez <Fatou> & Fils", "3 quai Saint-Antoine, 69002 Lyon", "Boulangerie-Pâtisserie",
            "Result: Satisfactory → 🟠 Needs improvement", "Inspected on 2026-02-27", "Changed: rating_label"]),
])
def test_alert_html_is_valid_telegram_html(lang: str, lines: list[str]) -> None:
    body = alert_html(downgrade(), lang)
    assert html_problem(body) is None
    assert plain_text(body).splitlines() == lines


def test_alert_html_links_the_official_record_when_given() -> None:
    body = alert_html(change(), "fr", link="https://example.org/fiche?id=1&x=2")
    assert html_problem(body) is None
    assert '<a href="https://example.org/fiche?id=1&amp;x=2">Fiche officielle</a>' in body


@pytest.mark.parametrize(("lat", "lon", "kept"), [
    (48.85661234, 2.35221987, Point(48.857, 2.352)),
    (-21.11549, 55.53638, Point(-21.115, 55.536)),
    (43.0, -0.00049, Point(43.0, -0.0)),
])
def test_shared_locations_are_rounded_to_about_100_m(lat: float, lon: float, kept: Point) -> None:
    assert round_point(lat, lon) == kept


@pytest.mark.parametrize(("choice", "data"), [
    (Choice.circle(Point(48.85661234, 2.35221987), 1000), "c:48.857:2.352:1000"),
    (Choice(Circle(Point(-21.115, 55.536), 500)), "c:-21.115:55.536:500"),
    (Choice(AdminArea("postcode", "75004")), "a:postcode:75004"),
    (Choice(AdminArea("commune", "2A004")), "a:commune:2A004"),
])
def test_button_data_round_trips_and_fits_telegram_limit(choice: Choice, data: str) -> None:
    assert choice.data() == data
    assert len(data.encode()) <= 64
    assert Choice.parse(data) == choice


@pytest.mark.parametrize("data", ["", "c:48.857:2.352", "c:48.857:2.352:750", "c:99:2:500", "a:region:11",
                                  "a:postcode:7500", "x:1:2:3"])
def test_foreign_button_data_is_refused(data: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Choice.parse(data)


@pytest.mark.parametrize(("text", "area"), [
    ("75004", AdminArea("postcode", "75004")),
    (" postcode 69002 ", AdminArea("postcode", "69002")),
    ("cp 13001", AdminArea("postcode", "13001")),
    ("commune 75104", AdminArea("commune", "75104")),
    ("2a004", AdminArea("commune", "2A004")),
    ("Paris", None), ("7500", None), ("", None), ("departement 75", None),
])
def test_near_arguments(text: str, area: AdminArea | None) -> None:
    assert parse_code(text) == area


def test_a_chat_choice_always_gives_the_same_subscription() -> None:
    choice = Choice.circle(Point(48.8566, 2.3522), 1000)
    first, again = subscription_for(42, choice, "fr"), subscription_for(42, choice, "en")
    assert first.id == again.id != subscription_for(43, choice, "fr").id
    assert (first.destination, first.area, first.active) == ("tg://42", Circle(Point(48.857, 2.352), 1000), True)


@pytest.mark.parametrize(("requested", "language_code", "lang"), [
    (None, None, "fr"), (None, "fr", "fr"), (None, "de", "fr"), (None, "en", "en"), (None, "en-GB", "en"),
    ("fr", "en", "fr"), ("en", "fr", "en"), ("es", "en", "en"),
])
def test_french_by_default_english_on_request(requested: str | None, language_code: str | None, lang: str) -> None:
    assert lang_of(requested, language_code) == lang


def test_places_and_subscriptions_are_escaped() -> None:
    places = places_html([(record(rating=1, name="A <b> & co"), 120.4), (record("k2", rating=2), 1530.0)], 1000, "fr")
    assert html_problem(places) is None
    text = plain_text(places)
    assert "1. A <b> & co\n🟢 Très satisfaisant · 120 m" in text
    assert "2. Boulangerie du Port\n🟡 Satisfaisant · 1.5 km" in text
    assert "contrôle du 2026-02-27" in text
    paused = dataclasses.replace(subscription("tg://42"), paused=True)
    listing = subscriptions_html([paused, dataclasses.replace(paused, paused=False, disabled_reason=BLOCKED)], "en")
    assert plain_text(listing).splitlines()[1:] == ["• 1 km around 45.764, 4.836 — paused",
                                                    "• 1 km around 45.764, 4.836 — suspended"]


@pytest.mark.parametrize(("error", "retriable", "retry_after", "refused"), [
    (RetryAfter(dt.timedelta(seconds=12)), True, 12.0, None),
    (Forbidden("Forbidden: bot was blocked by the user"), False, None, BLOCKED),
    (Forbidden("Forbidden: bot was kicked from the group chat"), False, None,
     "telegram refused: Forbidden: bot was kicked from the group chat"),
    (BadRequest("Bad Request: chat not found"), False, None, "the chat does not exist or never talked to the bot"),
    (BadRequest("Bad Request: can't parse entities"), False, None, None),
    (InvalidToken("Unauthorized"), False, None, None),
    (ChatMigrated(-1001234), False, None, None),
    (TimedOut(), True, None, None),
    (NetworkError("Bad Gateway"), True, None, None),
])
def test_bot_api_errors(error: Exception, retriable: bool, retry_after: float | None, refused: str | None) -> None:
    assert isinstance(error, RetryAfter | Forbidden | BadRequest | InvalidToken | ChatMigrated | NetworkError)
    mapped = api_error(error, "tg://42")
    assert (mapped.retriable, mapped.retry_after) == (retriable, retry_after)
    assert refusal(error) == refused
