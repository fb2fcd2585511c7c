"""Source incidents: a dataset that stopped updating, or whose source keeps failing, told to its subscribers once.

    stale      no new version seen for longer than `HealthRule.stale_after` (the weekly Alim'Confiance: 10 days)
    failing    `HealthRule.failures` consecutive failed or incomplete polls
    recovered  the incident is over: the last poll went fine and the data is fresh again

A source has at most one open incident. It opens with the first of the two conditions met (one notice), stays open
as long as either holds, whatever the polls in between (no notice), and closes once neither does (one "back to
normal" notice). `step` is the whole rule; both runtimes keep an `Incident` per source next to its health and call
it after every poll: the embedded processor in the poll's transaction, the distributed producer role after
publishing.

An incident's id comes from its source and its start (`since`: the first failed poll, or the last new version), so
a poll done again after a crash finds the same incident and the same notice ids: nobody is told twice. A notice
goes to every active subscription whose filter admits the dataset, wherever its area (core/match.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from core.model import Change, Kind, Op, Record, stable_hash

STALE, FAILING, RECOVERED = "stale", "failing", "recovered"
NOTICE_PREFIX = "source-incident:"
KINDS = {STALE: Kind.SOURCE_STALE, FAILING: Kind.SOURCE_FAILING, RECOVERED: Kind.SOURCE_RECOVERED}
DETAIL_CHARS = 300
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float | timedelta) -> timedelta:
    """`864000`, `"864000"`, `"10d"`, `"36h"`, `"2w"` → a positive timedelta; ValueError saying what is expected."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.fullmatch(value.strip().lower())
        if found is None:
            raise ValueError(f"a duration is seconds or a number with s, m, h, d or w (10d, 36h), got {value!r}")
        seconds = float(found[1]) * _UNITS[found[2]]
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class HealthRule:
    stale_after: timedelta = timedelta(days=10)
    failures: int = 3  # consecutive failed or incomplete polls before a source is failing


DEFAULT_HEALTH_RULE = HealthRule()


@dataclass(frozen=True, slots=True)
class Incident:
    """What a store keeps per source between polls. `state` "" means no incident is open."""

    state: str = ""
    since: datetime | None = None  # the open incident's start
    failures: int = 0  # consecutive failed or incomplete polls
    failing_since: datetime | None = None  # the first of them
    fresh_at: datetime | None = None  # when a new version was last seen (None: not yet)

    @property
    def open(self) -> bool:
        return bool(self.state)


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll's outcome: `problem` None for a good poll (a 304 or an unchanged version is good)."""

    at: datetime
    problem: str | None = None
    new_version: bool = False


@dataclass(frozen=True, slots=True)
class Transition:
    """An incident opening (`stale`, `failing`) or closing (`recovered`); `since` is the incident's start."""

    state: str
    since: datetime
    detail: str = ""
    opened: str = ""  # for `recovered`: the state the incident opened with


def _wanted(incident: Incident, at: datetime, rule: HealthRule) -> tuple[str, datetime] | None:
    if incident.failures >= rule.failures and incident.failing_since is not None:
        return FAILING, incident.failing_since
    if incident.fresh_at is not None and at - incident.fresh_at > rule.stale_after:
        return STALE, incident.fresh_at
    return None


def _counted(incident: Incident, poll: Poll) -> Incident:
    if poll.problem is not None:
        return replace(incident, failures=incident.failures + 1, failing_since=incident.failing_since or poll.at)
    fresh = poll.at if poll.new_version or incident.fresh_at is None else incident.fresh_at
    return replace(incident, failures=0, failing_since=None, fresh_at=fresh)


def step(incident: Incident, poll: Poll, rule: HealthRule = DEFAULT_HEALTH_RULE) -> tuple[Incident, Transition | None]:
    """The source's incident after `poll`, and the transition to tell subscribers about (None: nothing new)."""
    counted = _counted(incident, poll)
    wanted = _wanted(counted, poll.at, rule)
    if not incident.open and wanted is not None:
        state, since = wanted
        detail = (poll.problem or "")[:DETAIL_CHARS] if state == FAILING else ""
        return replace(counted, state=state, since=since), Transition(state, since, detail)
    if incident.open and wanted is None and incident.since is not None:
        closed = Transition(RECOVERED, incident.since, opened=incident.state)
        return replace(counted, state="", since=None), closed
    return counted, None


def incident_id(source: str, since: datetime) -> str:
    return stable_hash(source, since.isoformat())


def source_notice(source: str, dataset: str, transition: Transition, at: datetime, *, version: str = "",
                  shown: str | None = None) -> Change:
    """The change every subscriber of `dataset` receives: op `notice`, kind `source_stale`, `source_failing` or
    `source_recovered`; its record holds the facts (`state`, `since`, `detail`, `opened`, `source` as `shown`)."""
    incident = incident_id(source, transition.since)
    key = NOTICE_PREFIX + incident
    facts = {"state": transition.state, "since": transition.since.isoformat(), "detail": transition.detail,
             "opened": transition.opened, "source": shown if shown is not None else source, "incident": incident}
    notice_id = stable_hash(incident, transition.state)
    record = Record(dataset, key, facts, notice_id)
    return Change(notice_id, dataset, key, Op.NOTICE, (KINDS[transition.state],), None, record, (), at, version)
