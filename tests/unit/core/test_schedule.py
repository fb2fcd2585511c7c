"""core/schedule.py: digest times, quiet hours and the urgent bypass, as tables (times in Europe/Paris)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from core.codec import subscription_from_dict, subscription_to_dict
from core.errors import SubscriptionError
from core.model import Change
from core.schedule import (
    digest_option,
    next_digest,
    parse_digest,
    parse_quiet,
    quiet_end,
    quiet_option,
    release_at,
    timing,
    urgent,
)
from core.storms import DatasetEvent, notice
from tests.unit.core.factories import created, inspection, subscription

PARIS = ZoneInfo("Europe/Paris")


def at(text: str) -> datetime:
    """A Paris wall-clock time: `"03-02 23:30"` (2026)."""
    return datetime.strptime(f"2026-{text}", "%Y-%m-%d %H:%M").replace(tzinfo=PARIS)


def change(rating: int, detected: str) -> Change:
    return replace(created(inspection("k1", rating=rating)), detected_at=at(detected))


@pytest.mark.parametrize(("text", "expected"), [
    ("22:00-07:00", (time(22), time(7))), ("9h30-12h00", (time(9, 30), time(12))), ("", None),
])
def test_parse_quiet(text: str, expected: tuple[time, time] | None) -> None:
    assert parse_quiet(text) == expected


@pytest.mark.parametrize("text", ["22-07", "25:00-07:00", "08:00-08:00", "tonight"])
def test_unreadable_quiet_hours(text: str) -> None:
    with pytest.raises(SubscriptionError):
        parse_quiet(text)


@pytest.mark.parametrize(("text", "hours"), [("6h", 6), ("24", 24), (3, 3), ("", 0), (None, 0), (0, 0)])
def test_parse_digest(text: str | int | None, hours: int) -> None:
    assert parse_digest(text) == hours


@pytest.mark.parametrize("text", ["0h", "25h", "-1", "every day"])
def test_unreadable_digest(text: str) -> None:
    with pytest.raises(SubscriptionError):
        parse_digest(text)


@pytest.mark.parametrize(("moment", "hours", "expected"), [
    ("03-02 09:10", 6, "03-02 12:00"), ("03-02 12:00", 6, "03-02 18:00"), ("03-02 18:30", 6, "03-03 00:00"),
    ("03-02 23:59", 24, "03-03 00:00"), ("03-02 00:00", 24, "03-03 00:00"), ("03-02 09:10", 5, "03-02 10:00"),
    ("03-02 21:00", 5, "03-03 00:00"),
])
def test_next_digest(moment: str, hours: int, expected: str) -> None:
    assert next_digest(at(moment), hours, PARIS) == at(expected)


@pytest.mark.parametrize(("moment", "window", "expected"), [
    ("03-02 23:30", "22:00-07:00", "03-03 07:00"), ("03-03 06:59", "22:00-07:00", "03-03 07:00"),
    ("03-03 07:00", "22:00-07:00", None), ("03-02 21:59", "22:00-07:00", None),
    ("03-02 12:30", "12:00-14:00", "03-02 14:00"), ("03-02 15:00", "12:00-14:00", None),
])
def test_quiet_end(moment: str, window: str, expected: str | None) -> None:
    found = parse_quiet(window)
    assert found is not None
    assert quiet_end(at(moment), found, PARIS) == (None if expected is None else at(expected))


@pytest.mark.parametrize(("schedule", "rating", "detected", "now", "expected"), [
    ((0, ""), 2, "03-02 23:00", "03-02 23:00", None),  # neither: at once
    ((0, "22:00-07:00"), 2, "03-02 23:00", "03-02 23:00", "03-03 07:00"),  # held to the end of the night
    ((0, "22:00-07:00"), 2, "03-02 23:00", "03-03 07:00", None),  # and sent then
    ((0, "22:00-07:00"), 4, "03-02 23:00", "03-02 23:00", None),  # urgent: at once
    ((6, ""), 2, "03-02 09:10", "03-02 09:10", "03-02 12:00"),  # to the next digest
    ((6, ""), 2, "03-02 09:10", "03-02 12:00", None),  # sent at it, even if asked later
    ((6, ""), 4, "03-02 09:10", "03-02 09:10", None),  # urgent: at once
    ((6, "22:00-07:00"), 2, "03-02 19:00", "03-02 19:00", "03-03 07:00"),  # the midnight digest falls in the night
    ((6, "22:00-07:00"), 2, "03-02 19:00", "03-03 07:00", None),
])
def test_release_at(schedule: tuple[int, str], rating: int, detected: str, now: str, expected: str | None) -> None:
    sub = replace(subscription(), digest_hours=schedule[0], quiet_hours=schedule[1])
    assert release_at(sub, change(rating, detected), at(now)) == (None if expected is None else at(expected))


def test_a_dataset_notice_is_never_urgent() -> None:
    event = DatasetEvent("e1", "alimconfiance", "src", "v1", ("address",), 30, 100, at("03-02 09:00"))
    assert not urgent(notice(event))


def test_the_schedule_survives_the_codec() -> None:
    sub = replace(subscription(), digest_hours=6, quiet_hours="22:00-07:00", timezone="Europe/Berlin")
    assert subscription_from_dict(subscription_to_dict(sub)) == sub
    data = subscription_to_dict(subscription())
    for name in ("digest_hours", "quiet_hours", "timezone"):
        del data[name]
    assert subscription_from_dict(data) == subscription(), "older data: no digest, no quiet hours, Paris"


@pytest.mark.parametrize(("field", "value"), [("timezone", "Mars/Olympus"), ("quiet_hours", "late"),
                                              ("digest_hours", 48)])
def test_the_codec_refuses_a_bad_schedule(field: str, value: object) -> None:
    data = {**subscription_to_dict(subscription()), field: value}
    with pytest.raises(SubscriptionError):
        subscription_from_dict(data)


@pytest.mark.parametrize(("digest", "quiet", "expected"), [
    (0, "", "at once"),
    (6, "", "digest every 6h (Europe/Paris)"),
    (0, "22:00-07:00", "quiet 22:00-07:00 (Europe/Paris)"),
    (24, "22:00-07:00", "digest every 24h, quiet 22:00-07:00 (Europe/Paris)"),
])
def test_timing(digest: int, quiet: str, expected: str) -> None:
    assert timing(replace(subscription(), digest_hours=digest, quiet_hours=quiet)) == expected


@pytest.mark.parametrize(("text", "hours"), [("6h", 6), ("24", 24), ("off", 0), ("Non", 0), ("0", 0)])
def test_digest_option(text: str, hours: int) -> None:
    assert digest_option(text) == hours


@pytest.mark.parametrize(("text", "window"), [("22:00-07:00", "22:00-07:00"), ("22h30-7h00", "22:30-07:00"),
                                              ("off", ""), ("aucun", "")])
def test_quiet_option(text: str, window: str) -> None:
    assert quiet_option(text) == window


@pytest.mark.parametrize("text", ["25h", "soon", "-1"])
def test_bad_digest_option(text: str) -> None:
    with pytest.raises(SubscriptionError, match="digest"):
        digest_option(text)


@pytest.mark.parametrize("text", ["22:00", "25:00-07:00", "late"])
def test_bad_quiet_option(text: str) -> None:
    with pytest.raises(SubscriptionError, match="quiet hours"):
        quiet_option(text)
