"""The embedded processor: snapshot → diff against SQLite state → match → outbox, in one transaction.

A worker is a thin loop around the pure core: this module only decides what to commit.

- The first snapshot of a source is a *baseline*: it fills the state and alerts nobody
  (unless `baseline_alerts`).
- A snapshot marked incomplete, or a "complete" one with fewer rows than `min_ratio` of the
  known state (a sane floor against half-published exports), emits no removals and marks the
  source unhealthy; its version is not recorded, so the next poll downloads it again.
- A mass rewrite of a field (core/storms.py) is held as one dataset event: the state and the view move
  on, the held changes wait in the state for `release`, and each subscription that one of them would have
  reached gets one notice instead.
- After every poll, good, failed or unchanged, the source's incident takes a step (core/health.py): when one opens
  or ends, its notice goes to every subscription of the dataset, enqueued with the source's health.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from core.diff import apply, diff, refreshed
from core.health import DEFAULT_HEALTH_RULE, HealthRule, Incident, Poll, source_notice, step
from core.match import Matcher
from core.model import Change, Delivery, Op, Record
from core.ports import Snapshot
from core.profiles import GENERIC, Profile
from core.snapshots import judge
from core.stamps import stamp
from core.storms import DEFAULT_MASS_RULE, DatasetEvent, MassRule, Split, notice, split
from streams.sqlite import Commit, SourceState, StateStore
from streams.view_sqlite import SqliteCurrentView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    source: str
    version: str
    rows: int
    complete: bool
    baseline: bool = False
    unchanged: bool = False
    problem: str | None = None
    changes: list[Change] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    quarantined: int = 0
    held: list[Change] = field(default_factory=list)
    event: DatasetEvent | None = None
    notice: Change | None = None  # the source's incident opened or ended (core/health.py)

    def counts(self) -> Counter[str]:
        return Counter(c.op.value for c in self.changes)

    def kinds(self) -> Counter[str]:
        return Counter(k for c in self.changes for k in c.kinds)


def deliveries_for(changes: Iterable[Change], matcher: Matcher) -> list[Delivery]:
    """One batch lookup for all `changes` (the index matches a snapshot's worth at once)."""
    batch = list(changes)
    found = matcher.match_many(batch)
    return [Delivery.of(change, sub) for change, subs in zip(batch, found, strict=True) for sub in subs]


def incident_of(state: SourceState | None) -> Incident:
    if state is None:
        return Incident()
    return Incident(state.incident or "", _moment(state.incident_since), state.failures,
                    _moment(state.failing_since), _moment(state.fresh_at))


def with_incident(state: SourceState, incident: Incident) -> SourceState:
    return replace(state, incident=incident.state or None, incident_since=_stamp(incident.since),
                   failures=incident.failures, failing_since=_stamp(incident.failing_since),
                   fresh_at=_stamp(incident.fresh_at))


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else stamp(moment)


def notices_for(parted: Split, matcher: Matcher) -> list[Delivery]:
    """One notice of the held event to each subscription that a held change would have reached."""
    if parted.event is None:
        return []
    reached = {sub.id: sub for change in parted.held for sub in matcher.match(change)}
    announcement = notice(parted.event)
    return [Delivery.of(announcement, sub) for sub in reached.values()]


class Processor:
    """Processes snapshots of any number of sources; keeps each source's state cached in memory."""

    def __init__(self, state: StateStore, *, profiles: Callable[[str], Profile] = lambda _: GENERIC,
                 min_ratio: float = 0.5, baseline_alerts: bool = False,
                 mass_rule: MassRule = DEFAULT_MASS_RULE, health_rule: HealthRule = DEFAULT_HEALTH_RULE,
                 shown: Callable[[str], str] = str) -> None:
        self.state = state
        self._health_rule = health_rule
        self._shown = shown  # a source URL as subscribers may see it (secrets masked)
        self._profiles = profiles
        self._min_ratio = min_ratio
        self._baseline_alerts = baseline_alerts
        self._mass_rule = mass_rule
        self._cache: dict[str, dict[str, Record]] = {}
        self._views: dict[str, SqliteCurrentView] = {}

    async def view(self, dataset: str) -> SqliteCurrentView:
        """The current-state view of `dataset`, kept in the same transaction as the diff state."""
        if dataset not in self._views:
            view = SqliteCurrentView(self.state.db, dataset=dataset, profile=self._profiles(dataset))
            self._views[dataset] = await view.open()
        return self._views[dataset]

    async def previous(self, scope: str) -> dict[str, Record]:
        if scope not in self._cache:
            self._cache[scope] = await self.state.load(scope)
        return self._cache[scope]

    async def process(self, snapshot: Snapshot, matcher: Matcher, *, at: datetime) -> Outcome:
        scope = snapshot.source
        known = await self.state.source(scope)
        if snapshot.unchanged:
            health, notices = self.incident(known, SourceState(scope, None, True, None, stamp(at), None),
                                            snapshot.dataset, Poll(at), matcher)
            await self.state.commit(Commit(scope, [], [], [], notices, [], health), now=at)
            return Outcome(scope, snapshot.version, 0, snapshot.complete, unchanged=True, deliveries=notices,
                           notice=notices[0].change if notices else None)
        previous = await self.previous(scope)
        verdict = judge(snapshot, known_rows=len(previous), min_ratio=self._min_ratio,
                        trusted_before=known is not None and known.version is not None,
                        baseline_alerts=self._baseline_alerts)
        baseline, problem, complete, alerting = verdict.first, verdict.problem, verdict.complete, verdict.alerts
        profile = self._profiles(snapshot.dataset)
        changes = diff(previous, snapshot.records, complete=complete, at=at, version=snapshot.version,
                       profile=profile)
        parted = split(changes, rows=len(snapshot.records), profile=profile, rule=self._mass_rule, source=scope) \
            if alerting else Split(changes, [], None)
        deliveries = deliveries_for(parted.kept, matcher) + notices_for(parted, matcher) if alerting else []
        health = SourceState(scope, None if problem else snapshot.version, problem is None, problem, stamp(at),
                             len(snapshot.records))
        fresh = problem is None and (known is None or known.version != snapshot.version)
        health, notices = self.incident(known, health, snapshot.dataset, Poll(at, problem, fresh), matcher)
        deliveries += notices
        silent = refreshed(previous, snapshot.records, changes)
        commit = self._commit(scope, changes, parted, deliveries, snapshot=snapshot, health=health,
                              baseline=baseline, silent=silent)
        view = await self.view(snapshot.dataset)
        await self.state.commit(commit, now=at, also=lambda conn: view.apply_in(conn, changes))
        self._cache[scope] = apply(previous, changes) | {r.key: r for r in silent}
        outcome = Outcome(scope, snapshot.version, len(snapshot.records), complete, baseline, False, problem,
                          parted.kept, deliveries, len(snapshot.quarantined), parted.held, parted.event,
                          notices[0].change if notices else None)
        log.info("processed %s: %d rows, %d changes, %d held, %d deliveries, %d quarantined%s", scope, outcome.rows,
                 len(parted.kept), len(parted.held), len(deliveries), outcome.quarantined,
                 " (baseline)" if baseline else "")
        return outcome

    def incident(self, known: SourceState | None, health: SourceState, dataset: str, poll: Poll,
                 matcher: Matcher) -> tuple[SourceState, list[Delivery]]:
        """`health` with the source's incident after `poll`, and the deliveries of its notice if one opened or
        ended (to every subscription of `dataset`)."""
        incident, transition = step(incident_of(known), poll, self._health_rule)
        health = with_incident(health, incident)
        if transition is None:
            return health, []
        version = (known.version or "") if known else ""
        notice = source_notice(health.url, dataset, transition, poll.at, version=version,
                               shown=self._shown(health.url))
        deliveries = deliveries_for([notice], matcher)
        log.warning("source %s: %s since %s, %d subscriber(s) told", self._shown(health.url), transition.state,
                    transition.since.isoformat(), len(deliveries), extra={"source": self._shown(health.url)})
        return health, deliveries

    async def failed(self, url: str, dataset: str, problem: str, matcher: Matcher, *, at: datetime) -> Outcome:
        """A poll that raised: the source is unhealthy, and its incident takes a step, in one transaction."""
        known = await self.state.source(url)
        health, notices = self.incident(known, SourceState(url, None, False, problem, stamp(at), None), dataset,
                                        Poll(at, problem), matcher)
        await self.state.commit(Commit(url, [], [], [], notices, [], health), now=at)
        return Outcome(url, "", 0, False, problem=problem, deliveries=notices,
                       notice=notices[0].change if notices else None)

    @staticmethod
    def _commit(scope: str, changes: list[Change], parted: Split, deliveries: list[Delivery], *, snapshot: Snapshot,
                health: SourceState, baseline: bool, silent: list[Record]) -> Commit:
        """The state takes every change (held ones too: the next snapshot must not see them again); the change
        log takes those that alert, the held ones wait with their event."""
        upserts = [c.after for c in changes if c.after is not None] + silent
        deletes = [c.key for c in changes if c.op is Op.REMOVED]
        logged = [] if baseline else parted.kept
        return Commit(scope, upserts, deletes, logged, deliveries, snapshot.quarantined, health, parted.held,
                      parted.event)
