"""How a dataset's changes become domain kinds, and how its records are fingerprinted.

A Profile is data: which fields are volatile, which field orders a group's records in time,
how long the dataset's rolling window is, the name of its 'created' kind, which field a partitioned
stream shards records by, which differences are only cosmetic (core/sameness.py) and which fields are the
results a mass-change guard never holds back (core/storms.py).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson

from core.geo import Point
from core.model import Kind, Op, Record
from core.sameness import same_geo_text, same_point, same_value


@dataclass(frozen=True, slots=True)
class Profile:
    dataset: str
    volatile: frozenset[str] = frozenset()
    created_kind: str = Kind.CREATED
    order_field: str | None = None
    window_days: int | None = None
    window_grace_days: int = 7
    partition_field: str | None = None
    cosmetic: bool = False  # compare values with core.sameness (case, accents, spaces, 1 = 1.0, point jitter)
    jitter_m: float = 0.0
    geo_field: str | None = None  # a "lat,lon" text field, compared as a point within jitter_m
    result_fields: frozenset[str] = frozenset()  # a change of these always alerts, even inside a mass change

    def same(self, field: str, a: Any, b: Any) -> bool:
        """Whether a field's two values are the same value for this dataset (equal, or cosmetically so)."""
        if a == b:
            return True
        if not self.cosmetic:
            return False
        if field == self.geo_field:
            return same_geo_text(a, b, self.jitter_m)
        return same_value(a, b)

    def same_point(self, a: Point | None, b: Point | None) -> bool:
        return a == b or (self.cosmetic and same_point(a, b, self.jitter_m))

    def fingerprint(self, fields: Mapping[str, Any]) -> str:
        """Digest of the non-volatile fields, independent of key order."""
        if self.volatile.isdisjoint(fields):
            kept = fields
        else:
            kept = {k: v for k, v in fields.items() if k not in self.volatile}
        return hashlib.blake2b(orjson.dumps(kept, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()

    def partition_key(self, record: Record) -> str:
        """What a partitioned stream shards records by. It must never change for a record key (a record that
        moved partition would leave its diff state behind: a false removal there, a false creation here) and
        should be shared by the records of an entity (the entity's latest record gives `created` its trend).
        Without a `partition_field` that is the entity, which generic datasets never change (no group); a record
        with an empty `partition_field` goes with the other empty ones."""
        if self.partition_field is None:
            return record.entity
        return str(record.fields.get(self.partition_field) or "")

    def order(self, record: Record) -> str:
        return str(record.fields.get(self.order_field) or "") if self.order_field else ""

    def window_floor(self, records: Iterable[Record]) -> str | None:
        """ISO date before which a record lies outside the rolling window, from the newest date seen."""
        if not self.order_field or not self.window_days:
            return None
        newest = max((self.order(r)[:10] for r in records), default="")
        if not newest:
            return None
        span = timedelta(days=self.window_days - self.window_grace_days)
        try:
            return (date.fromisoformat(newest) - span).isoformat()
        except ValueError:  # an unreadable date must not stop the diff: no record is called aged out
            return None

    def kinds(self, op: Op, before: Record | None, after: Record | None, *, last_in_group: Record | None = None,
              floor: str | None = None) -> tuple[str, ...]:
        if op is Op.CREATED:
            return (self.created_kind, *self._trend(last_in_group, after))
        if op is Op.UPDATED:
            return (*self._trend(before, after), Kind.UPDATED)
        if before is not None and floor is not None and self.order(before)[:10] < floor:
            return (Kind.AGED_OUT,)
        return (Kind.REMOVED,)

    def _trend(self, old: Record | None, new: Record | None) -> tuple[str, ...]:
        if old is None or new is None or old.rating is None or new.rating is None:
            return ()
        if self.order(new) < self.order(old):
            return ()
        if new.rating > old.rating:
            return (Kind.DOWNGRADE,)
        if new.rating < old.rating:
            return (Kind.UPGRADE,)
        return ()


GENERIC = Profile(dataset="")

ALIMCONFIANCE = Profile(
    dataset="alimconfiance",
    volatile=frozenset({"date_extraction"}),
    created_kind=Kind.NEW_INSPECTION,
    order_field="date_inspection",
    window_days=365,
    # The SIRET is part of the inspection key, so it never changes for a record, and every establishment
    # keyed by SIRET + address shares it; the establishment (the entity) changes with its address.
    partition_field="siret",
    cosmetic=True,
    jitter_m=5.0,
    geo_field="geo",
    result_fields=frozenset({"date_inspection", "rating_label", "numero_inspection"}),
)

PROFILES = {p.dataset: p for p in (ALIMCONFIANCE,)}


def profile_for(dataset: str) -> Profile:
    """The profile of a known dataset, else the generic one (created/updated/removed only)."""
    return PROFILES.get(dataset) or Profile(dataset=dataset)


RATING_LABELS = {
    1: {"fr": "Très satisfaisant", "en": "Very satisfactory"},
    2: {"fr": "Satisfaisant", "en": "Satisfactory"},
    3: {"fr": "A améliorer", "en": "Needs improvement"},
    4: {"fr": "A corriger de manière urgente", "en": "Urgent corrective action required"},
}


def rating_of(label: str | None, code: str | None = None) -> int | None:
    """Rating 1..4 from the published code or label; None when neither is readable."""
    if code and code.strip() in {"1", "2", "3", "4"}:
        return int(code.strip())
    text = _fold(label or "")
    for value, names in RATING_LABELS.items():
        if text == _fold(names["fr"]):
            return value
    return None


def _fold(label: str) -> str:
    """Case- and accent-insensitive form of a label, whatever its Unicode form: 'À améliorer' → 'a ameliorer'."""
    decomposed = unicodedata.normalize("NFKD", label.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))
