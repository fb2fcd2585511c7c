"""The mass-change guard: one dataset notice instead of thousands of alerts when a publisher rewrites a field.

Real Alim'Confiance history: between two public exports in 2017 the portal rewrote the commune names and many
address lines of 6,816 of ~9,000 records. Differences of case or accents are cosmetic (core/sameness.py) and alert
nobody anyway; this rule is for rewrites that are not ("BD" → "Boulevard" on every address).

A *candidate* is an `updated` change that leaves the record's rating as it was and touches none of the
profile's result fields (Alim'Confiance: the inspection date and rating label). A field is *mass-rewritten* in a
snapshot when more than `share` of the snapshot's records (and at least `minimum`) have a candidate change
touching it. Candidates whose changed fields are all mass-rewritten are *held*: the state moves on (the next
snapshot does not see them again), they alert nobody, and one `DatasetEvent` records them; its subscribers get one
notice (`notice`). `vigie sources release` lets the held changes through when they are real. A change of a
result field is never held, inside a mass change or not.

Both runtimes call `split` on the changes of one snapshot: the embedded processor with the whole snapshot's
changes, the Kafka gate once every partition has reported its candidates (streams/kafka_gate.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.model import Change, Kind, Op, Record, stable_hash
from core.profiles import Profile

NOTICE_PREFIX = "dataset-event:"


@dataclass(frozen=True, slots=True)
class MassRule:
    share: float = 0.05
    minimum: int = 20  # fewer rewritten records are never a mass change (a small dataset's weekly fixes)


DEFAULT_MASS_RULE = MassRule()


@dataclass(frozen=True, slots=True)
class DatasetEvent:
    """A mass rewrite held back: which fields, on how many of the snapshot's records."""

    id: str
    dataset: str
    source: str
    version: str
    fields: tuple[str, ...]
    count: int
    rows: int
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class Split:
    kept: list[Change]
    held: list[Change]
    event: DatasetEvent | None


def candidate(change: Change, profile: Profile) -> bool:
    """An update that leaves the rating and every result field as they were."""
    if change.op is not Op.UPDATED or not change.changed or not profile.result_fields.isdisjoint(change.changed):
        return False
    return change.before is not None and change.after is not None and change.before.rating == change.after.rating


def mass_fields(candidates: Iterable[Change], rows: int, rule: MassRule) -> frozenset[str]:
    counts = Counter(f for c in candidates for f in c.changed)
    floor = max(rule.share * rows, rule.minimum - 1)
    return frozenset(f for f, n in counts.items() if n > floor)


def split(changes: Sequence[Change], *, rows: int, profile: Profile, rule: MassRule, source: str) -> Split:
    """The changes to alert on, the ones held as a dataset event, and that event (None: nothing held)."""
    fields = mass_fields((c for c in changes if candidate(c, profile)), rows, rule)
    if not fields:
        return Split(list(changes), [], None)
    held = [c for c in changes if candidate(c, profile) and fields.issuperset(c.changed)]
    if not held:
        return Split(list(changes), [], None)
    ids = {c.id for c in held}
    first = held[0]
    touched = tuple(sorted({f for c in held for f in c.changed}))
    event = DatasetEvent(stable_hash(source, first.source_version, *touched), first.dataset, source,
                         first.source_version, touched, len(held), rows, first.detected_at)
    return Split([c for c in changes if c.id not in ids], held, event)


def notice(event: DatasetEvent) -> Change:
    """The one change a subscriber receives for a held event: op `notice`, kind `mass_update`; its record holds
    the event's facts (`fields`, `count`, `rows`, `source`)."""
    key = NOTICE_PREFIX + event.id
    facts = {"fields": list(event.fields), "count": event.count, "rows": event.rows, "source": event.source,
             "version": event.version}
    record = Record(event.dataset, key, facts, event.id)
    return Change(stable_hash(event.id, "notice"), event.dataset, key, Op.NOTICE, (Kind.MASS_UPDATE,), None,
                  record, event.fields, event.detected_at, event.version)
