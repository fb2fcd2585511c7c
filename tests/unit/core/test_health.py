"""core/health: one notice when a source's incident opens, none while it lasts, one when it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.geo import AdminArea, Circle
from core.health import (
    FAILING,
    RECOVERED,
    STALE,
    HealthRule,
    Incident,
    Poll,
    Transition,
    incident_id,
    parse_duration,
    source_notice,
    step,
)
from core.index import SubscriptionIndex
from core.match import brute_force
from core.model import Filter, Kind, Op, Subscription
from tests.unit.core.factories import PARIS, subscription

T0 = datetime(2025, 6, 1, 6, 0, tzinfo=UTC)
RULE = HealthRule(stale_after=timedelta(days=10), failures=3)
DAY = timedelta(days=1)
OK, NEW, BAD = "ok", "new", "bad"
NONE = Incident()


def run(polls: list[tuple[timedelta, str]], start: Incident = NONE) -> tuple[Incident, list[Transition]]:
    incident, said = start, []
    for offset, outcome in polls:
        poll = Poll(T0 + offset, "HTTP 503" if outcome == BAD else None, new_version=outcome == NEW)
        incident, transition = step(incident, poll, RULE)
        said += [transition] if transition else []
    return incident, said


@pytest.mark.parametrize(("polls", "states", "open_state"), [
    ([(0 * DAY, NEW), (DAY, OK), (7 * DAY, NEW)], [], ""),
    ([(0 * DAY, NEW), (DAY, BAD), (2 * DAY, BAD)], [], ""),  # two failures: not yet
    ([(0 * DAY, NEW), (DAY, BAD), (2 * DAY, BAD), (3 * DAY, BAD), (4 * DAY, BAD)], [FAILING], FAILING),
    ([(0 * DAY, NEW), (DAY, BAD), (2 * DAY, BAD), (3 * DAY, BAD), (4 * DAY, OK)], [FAILING, RECOVERED], ""),
    ([(0 * DAY, NEW), (DAY, BAD), (2 * DAY, OK), (3 * DAY, BAD), (4 * DAY, BAD)], [], ""),  # not consecutive
    ([(0 * DAY, NEW), (5 * DAY, OK), (10 * DAY, OK)], [], ""),  # exactly 10 days: not yet stale
    ([(0 * DAY, NEW), (11 * DAY, OK), (12 * DAY, OK), (13 * DAY, OK)], [STALE], STALE),
    ([(0 * DAY, NEW), (11 * DAY, OK), (12 * DAY, NEW)], [STALE, RECOVERED], ""),
    # stale, then failing too: still the one incident; fine polls of stale data do not end it, a new version does
    ([(0 * DAY, NEW), (11 * DAY, OK), (12 * DAY, BAD), (13 * DAY, BAD), (14 * DAY, BAD), (15 * DAY, OK),
      (16 * DAY, NEW)], [STALE, RECOVERED], ""),
    ([(0 * DAY, BAD), (DAY, BAD), (2 * DAY, BAD)], [FAILING], FAILING),  # never worked
])
def test_one_notice_at_the_start_none_during_one_at_the_end(polls: list[tuple[timedelta, str]], states: list[str],
                                                            open_state: str) -> None:
    incident, said = run(polls)
    assert [t.state for t in said] == states
    assert incident.state == open_state


def test_the_incident_starts_at_its_first_failure_and_says_why() -> None:
    incident, said = run([(0 * DAY, NEW), (DAY, BAD), (2 * DAY, BAD), (3 * DAY, BAD)])
    assert said == [Transition(FAILING, T0 + DAY, "HTTP 503")]
    assert (incident.since, incident.failures) == (T0 + DAY, 3)
    _, ended = run([(4 * DAY, OK)], incident)
    assert ended == [Transition(RECOVERED, T0 + DAY, opened=FAILING)]


def test_a_stale_incident_starts_at_the_last_new_version() -> None:
    _, said = run([(0 * DAY, NEW), (2 * DAY, OK), (11 * DAY, OK)])
    assert said == [Transition(STALE, T0)]


def test_a_poll_done_again_after_a_crash_gives_the_same_notice() -> None:
    before, _ = run([(0 * DAY, NEW), (DAY, BAD), (2 * DAY, BAD)])
    once = [step(before, Poll(T0 + 3 * DAY + timedelta(minutes=m), "HTTP 503"), RULE)[1] for m in (0, 7)]
    notices = [source_notice("ods+https://p/x", "alimconfiance", t, T0 + 3 * DAY) for t in once if t]
    assert len({n.id for n in notices}) == 1


def test_source_notice() -> None:
    change = source_notice("ods+https://p/x?apikey=k", "alimconfiance", Transition(FAILING, T0, "HTTP 503"),
                           T0 + DAY, version="v7", shown="ods+https://p/x?apikey=***")
    assert (change.op, change.kinds, change.dataset, change.source_version) == \
        (Op.NOTICE, (Kind.SOURCE_FAILING,), "alimconfiance", "v7")
    assert change.key == "source-incident:" + incident_id("ods+https://p/x?apikey=k", T0)
    assert dict(change.current.fields) == {
        "state": "failing", "since": T0.isoformat(), "detail": "HTTP 503", "opened": "", "incident":
        incident_id("ods+https://p/x?apikey=k", T0), "source": "ods+https://p/x?apikey=***"}
    assert change.current.rating is None
    assert change.current.point is None


def test_a_source_notice_reaches_every_active_subscription_of_its_dataset_wherever_it_is() -> None:
    subs = [
        subscription("paris", Circle(PARIS, 500), filter=Filter(min_rating=4)),
        subscription("lyon-kinds", AdminArea("postcode", "69002"), filter=Filter(kinds=frozenset({"downgrade"}))),
        subscription("other", filter=Filter(datasets=frozenset({"other"}))),
        subscription("ours", filter=Filter(datasets=frozenset({"alimconfiance"}))),
        Subscription("paused", subscription().area, "console://", paused=True),
    ]
    change = source_notice("s", "alimconfiance", Transition(STALE, T0), T0)
    found = SubscriptionIndex(subs).match(change)
    assert [s.id for s in found] == ["lyon-kinds", "ours", "paris"]
    assert found == brute_force(subs, change)


@pytest.mark.parametrize(("value", "seconds"), [
    ("10d", 864_000), ("36h", 129_600), ("90m", 5400), ("45s", 45), ("2w", 1_209_600), ("864000", 864_000),
    (" 1.5d ", 129_600), (600, 600), (timedelta(hours=1), 3600),
])
def test_durations(value: str | float | timedelta, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["", "ten days", "10y", "0", "-5", 0, "1d2h"])
def test_bad_durations_say_what_is_expected(value: str | float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
