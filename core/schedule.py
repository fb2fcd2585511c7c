"""When an alert may go out: a subscription's digest and quiet hours. Pure: `now` is an argument.

    digest_hours N   alerts are held to the next digest time: local midnight + k·N hours (N ≤ 24; at N = 24,
                     midnight), in the subscription's timezone; everything due at once goes out merged
    quiet_hours      "22:00-07:00": an alert due inside the window is held to its end (windows may cross midnight)
    urgent           a change whose record is rated 4 ("A corriger de manière urgente") bypasses both

`release_at(subscription, change, now)` is the single rule both workers call: None means "send now", a datetime
means "hold until then, then ask again". The digest time is computed from the change's `detected_at`, not from
`now`, so asking again at or after it answers "send now" (the rule is idempotent: no state to keep).
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import SubscriptionError
from core.model import Change, Op, Subscription

DEFAULT_TIMEZONE = "Europe/Paris"
URGENT_RATING = 4
_WINDOW = re.compile(r"([01]?\d|2[0-3])[:h]([0-5]\d)\s*-\s*([01]?\d|2[0-3])[:h]([0-5]\d)")
_HOURS = re.compile(r"(\d{1,2})\s*h?")


def parse_quiet(text: str) -> tuple[time, time] | None:
    """`"22:00-07:00"` → (22:00, 07:00); `""` → None; SubscriptionError when unreadable or empty."""
    if not text.strip():
        return None
    found = _WINDOW.fullmatch(text.strip())
    if found is None:
        raise SubscriptionError(f"quiet hours must look like 22:00-07:00, got {text!r}")
    start, end = time(int(found[1]), int(found[2])), time(int(found[3]), int(found[4]))
    if start == end:
        raise SubscriptionError(f"quiet hours {text!r} start and end at the same time")
    return start, end


def quiet_text(window: tuple[time, time] | None) -> str:
    return "" if window is None else f"{window[0]:%H:%M}-{window[1]:%H:%M}"


def parse_digest(text: str | int | None) -> int:
    """`"6h"`, `"6"`, 6 → 6 hours; `""`, None, 0 → 0 (no digest); SubscriptionError outside 1..24."""
    if text is None or text in ("", 0):
        return 0
    found = _HOURS.fullmatch(str(text).strip().lower())
    hours = int(found[1]) if found else -1
    if not 1 <= hours <= 24:
        raise SubscriptionError(f"digest must be a number of hours from 1 to 24 such as 6h, got {text!r}")
    return hours


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SubscriptionError(f"unknown timezone {name!r} (an IANA name such as Europe/Paris)") from exc


def urgent(change: Change) -> bool:
    return change.op is not Op.NOTICE and change.after is not None and change.after.rating == URGENT_RATING


def next_digest(moment: datetime, hours: int, tz: ZoneInfo) -> datetime:
    """The first digest time strictly after `moment`: local midnight + k·hours (the last one of a day is the
    next midnight)."""
    local = moment.astimezone(tz)
    midnight = datetime.combine(local.date(), time(0), tz)
    for k in range(1, 24 // hours + 1):
        slot = midnight + timedelta(hours=k * hours)
        if slot.replace(tzinfo=None) > local.replace(tzinfo=None) and k * hours < 24:
            return slot
    return datetime.combine(local.date() + timedelta(days=1), time(0), tz)


def quiet_end(moment: datetime, window: tuple[time, time], tz: ZoneInfo) -> datetime | None:
    """The end of the quiet window `moment` falls in, or None when it falls in none."""
    local = moment.astimezone(tz)
    start, end = window
    clock = local.timetz().replace(tzinfo=None)
    inside = start <= clock < end if start < end else clock >= start or clock < end
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tz)


def release_at(subscription: Subscription, change: Change, now: datetime) -> datetime | None:
    """None: send now. Else the time to hold the alert until (then ask again)."""
    if urgent(change) or (not subscription.digest_hours and not subscription.quiet_hours):
        return None
    tz = zone(subscription.timezone)
    window = parse_quiet(subscription.quiet_hours)
    due = next_digest(change.detected_at, subscription.digest_hours, tz) if subscription.digest_hours else now
    if now < due:
        return (quiet_end(due, window, tz) if window else None) or due
    return quiet_end(now, window, tz) if window else None


def timing(subscription: Subscription) -> str:
    """One line for listings: `at once`, `digest every 6h`, `quiet 22:00-07:00`, with the timezone when either is
    set (`digest every 6h, quiet 22:00-07:00 (Europe/Paris)`)."""
    parts = [*([f"digest every {subscription.digest_hours}h"] if subscription.digest_hours else []),
             *([f"quiet {subscription.quiet_hours}"] if subscription.quiet_hours else [])]
    return f"{', '.join(parts)} ({subscription.timezone})" if parts else "at once"


OFF = frozenset({"off", "none", "no", "non", "aucun", "0"})


def digest_option(text: str) -> int:
    """A bot's `digest` option: `6h` → 6, `off` (or 0, none, non) → 0; SubscriptionError otherwise."""
    return 0 if text.strip().lower() in OFF else parse_digest(text)


def quiet_option(text: str) -> str:
    """A bot's `quiet` option: `22:00-07:00` (normalised), `off` → ""; SubscriptionError otherwise."""
    if text.strip().lower() in OFF:
        return ""
    return quiet_text(parse_quiet(text)) if text.strip() else ""
