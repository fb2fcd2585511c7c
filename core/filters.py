"""Field predicates of a subscription filter: eq, in, range, contains, exists, combined with and / or / not.

A predicate is a frozen tree evaluated on a change with `holds(predicate, change)`. It reads the change's current
record (the record as it is now, or as it was last seen when removed), or one of the change's own facts:

    dataset   the dataset name                 kind      any of the change's kinds (downgrade, new_inspection…)
    op        created / updated / removed      changed   any of the fields the change rewrote
    rating    the record's rating (1..4)       activity  any of the activity types (`Restaurant|Traiteur` is two)

Any other name is a record field (`name`, `postcode`, `date_inspection`…). Text compares without case or accents
and with spaces collapsed; a number compares with a field holding the same number as text (`"75" = 75`); a range
compares numbers as numbers and text as text (ISO dates order as text). A missing field satisfies only `not …`.

The JSON form (codec, REST API) is one object per node:

    {"and": [...]}  {"or": [...]}  {"not": {...}}
    {"field": "rating", "eq": 4}   {"field": "activity", "in": ["Restaurant", "Boulangerie"]}
    {"field": "date_inspection", "gte": "2025-01-01", "lt": "2026-01-01"}
    {"field": "name", "contains": "pizza"}   {"field": "siret", "exists": true}

`from_json` raises SubscriptionError naming the path of the bad node (`and[1].in: …`). The text form is
core/where.py.
"""

from __future__ import annotations

import functools
import math
import operator
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import SubscriptionError

if TYPE_CHECKING:
    from core.model import Change

Scalar = str | int | float
MAX_NODES = 64
MAX_DEPTH = 8
MAX_TEXT = 200
CHANGE_FACTS = ("dataset", "kind", "op", "changed", "rating", "activity")
RANGE_KEYS = ("gt", "gte", "lt", "lte")


@dataclass(frozen=True, slots=True)
class Eq:
    field: str
    value: Scalar


@dataclass(frozen=True, slots=True)
class In:
    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds left as None are open; at least one is given."""

    field: str
    gt: Scalar | None = None
    gte: Scalar | None = None
    lt: Scalar | None = None
    lte: Scalar | None = None


@dataclass(frozen=True, slots=True)
class Contains:
    field: str
    text: str


@dataclass(frozen=True, slots=True)
class Exists:
    field: str


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Predicate


Predicate = Eq | In | Range | Contains | Exists | And | Or | Not


# -- evaluation ----------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case, accents and runs of spaces do not count: `  Très  Satisfaisant` → `tres satisfaisant`."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


_FACTS: dict[str, Callable[[Change], tuple[Any, ...]]] = {
    "dataset": lambda c: (c.dataset,),
    "kind": lambda c: c.kinds,
    "op": lambda c: (c.op.value,),
    "changed": lambda c: c.changed,
    "rating": lambda c: () if c.current.rating is None else (c.current.rating,),
}


def values_of(change: Change, field: str) -> tuple[Any, ...]:
    """Every value `field` has for `change` (none when absent; several for kinds, changed fields, activities)."""
    fact = _FACTS.get(field)
    if fact is not None:
        return fact(change)
    value = change.current.fields.get(field)
    if value is None or value == "":
        return ()
    if field == "activity" and isinstance(value, str):
        return tuple(part for part in (p.strip() for p in value.split("|")) if part)
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def _same(value: Any, wanted: Scalar) -> bool:
    if isinstance(wanted, str):
        return isinstance(value, str) and fold(value) == fold(wanted)
    number = _number(value)
    return number is not None and number == float(wanted)


def _ordered(value: Any, bound: Scalar) -> tuple[Any, Any] | None:
    """(value, bound) as two comparable things, numbers or folded text; None when they cannot compare."""
    if isinstance(bound, str):
        return (fold(value), fold(bound)) if isinstance(value, str) else None
    number = _number(value)
    return None if number is None else (number, float(bound))


_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool]], ...] = (
    ("gt", operator.gt), ("gte", operator.ge), ("lt", operator.lt), ("lte", operator.le))


def _in_range(value: Any, r: Range) -> bool:
    for name, compare in _BOUNDS:
        bound = getattr(r, name)
        if bound is None:
            continue
        pair = _ordered(value, bound)
        if pair is None or not compare(*pair):
            return False
    return True


def holds(predicate: Predicate, change: Change) -> bool:  # noqa: PLR0911 - one return per node type reads best
    match predicate:
        case And(parts):
            return all(holds(p, change) for p in parts)
        case Or(parts):
            return any(holds(p, change) for p in parts)
        case Not(part):
            return not holds(part, change)
        case Exists(field):
            return bool(values_of(change, field))
        case Eq(field, wanted):
            return any(_same(v, wanted) for v in values_of(change, field))
        case In(field, choices):
            return any(_same(v, w) for v in values_of(change, field) for w in choices)
        case Contains(field, text):
            return any(isinstance(v, str) and fold(text) in fold(v) for v in values_of(change, field))
        case Range():
            return any(_in_range(v, predicate) for v in values_of(change, predicate.field))
    raise TypeError(f"not a predicate: {predicate!r}")


def nodes(predicate: Predicate) -> Iterator[Predicate]:
    yield predicate
    if isinstance(predicate, And | Or):
        for part in predicate.parts:
            yield from nodes(part)
    elif isinstance(predicate, Not):
        yield from nodes(predicate.part)


def depth(predicate: Predicate) -> int:
    if isinstance(predicate, And | Or):
        return 1 + max((depth(p) for p in predicate.parts), default=0)
    return 1 + depth(predicate.part) if isinstance(predicate, Not) else 1


def checked(predicate: Predicate) -> Predicate:
    """`predicate` when small enough to evaluate per change; SubscriptionError otherwise."""
    count = sum(1 for _ in nodes(predicate))
    if count > MAX_NODES:
        raise SubscriptionError(f"a filter may have at most {MAX_NODES} conditions, this one has {count}")
    if depth(predicate) > MAX_DEPTH:
        raise SubscriptionError(f"a filter may nest at most {MAX_DEPTH} levels deep")
    return predicate


# -- the thematic filter of a subscription --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Filter:
    """Thematic filter. Empty sets mean 'any'. `min_rating` keeps ratings >= N (4 = urgent only), `max_rating`
    ratings <= N (1 = the best only); `activities` keeps records of one of these activity types (without case or
    accents); `where` is a field predicate (core/filters.py, text form core/where.py)."""

    datasets: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    min_rating: int | None = None
    max_rating: int | None = None
    activities: frozenset[str] = frozenset()
    where: Predicate | None = None

    def admits(self, dataset: str) -> bool:
        return not self.datasets or dataset in self.datasets

    def accepts(self, change: Change, rating: int | None) -> bool:
        if not self.admits(change.dataset):
            return False
        if self.kinds and self.kinds.isdisjoint(change.kinds):
            return False
        if self.min_rating is not None and (rating is None or rating < self.min_rating):
            return False
        if self.max_rating is not None and (rating is None or rating > self.max_rating):
            return False
        return self.accepts_fields(change)

    def accepts_fields(self, change: Change) -> bool:
        """The part of the test that reads record fields: activities and `where`."""
        if self.activities:
            wanted = {fold(a) for a in self.activities}
            if not any(fold(a) in wanted for a in values_of(change, "activity")):
                return False
        return self.where is None or holds(self.where, change)

    @property
    def reads_fields(self) -> bool:
        return bool(self.activities) or self.where is not None

    @property
    def fields_read(self) -> frozenset[str]:
        """The record fields `accepts` may read (besides the change's facts: dataset, kinds, op, changed fields,
        rating): two changes equal on these and on the facts get the same verdict."""
        read = {"activity"} if self.activities else set()
        if self.where is not None:
            read.update(p.field for p in nodes(self.where) if not isinstance(p, And | Or | Not))
        return frozenset(read - _FACTS.keys())



def filter_to_dict(f: Filter) -> dict[str, Any]:
    """The codec's form; keys for what older versions did not have are written only when set."""
    data: dict[str, Any] = {"datasets": sorted(f.datasets), "kinds": sorted(f.kinds), "min_rating": f.min_rating}
    if f.max_rating is not None:
        data["max_rating"] = f.max_rating
    if f.activities:
        data["activities"] = sorted(f.activities)
    if f.where is not None:
        data["where"] = to_json(f.where)
    return data


def filter_from_dict(d: dict[str, Any]) -> Filter:
    """Older data (no max_rating, activities or where) reads as before; SubscriptionError on a bad value."""
    where = d.get("where")
    return Filter(_names(d.get("datasets", []), "datasets"), _names(d.get("kinds", []), "kinds"),
                  _rating(d.get("min_rating"), "min_rating"), _rating(d.get("max_rating"), "max_rating"),
                  _names(d.get("activities", []), "activities"), None if where is None else from_json(where))


def _names(value: Any, what: str) -> frozenset[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SubscriptionError(f"filter {what} must be a list of strings, got {value!r}")
    return frozenset(value)


def _rating(value: Any, what: str) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 4):
        raise SubscriptionError(f"filter {what} must be 1..4 or null, got {value!r}")
    return value


# -- JSON form -----------------------------------------------------------------------------------------------------

def to_json(predicate: Predicate) -> dict[str, Any]:  # noqa: PLR0911 - one return per node type reads best
    match predicate:
        case And(parts):
            return {"and": [to_json(p) for p in parts]}
        case Or(parts):
            return {"or": [to_json(p) for p in parts]}
        case Not(part):
            return {"not": to_json(part)}
        case Exists(field):
            return {"field": field, "exists": True}
        case Eq(field, value):
            return {"field": field, "eq": value}
        case In(field, values):
            return {"field": field, "in": list(values)}
        case Contains(field, text):
            return {"field": field, "contains": text}
        case Range():
            bounds = {k: getattr(predicate, k) for k in RANGE_KEYS if getattr(predicate, k) is not None}
            return {"field": predicate.field, **bounds}
    raise TypeError(f"not a predicate: {predicate!r}")


def from_json(data: Any) -> Predicate:
    """The predicate `data` describes, checked (size, depth); SubscriptionError naming the bad node's path."""
    return checked(_node(data, ""))


def _fail(path: str, message: str) -> SubscriptionError:
    return SubscriptionError(f"{path or 'filter'}: {message}")


def _node(data: Any, path: str) -> Predicate:
    if not isinstance(data, dict):
        raise _fail(path, f"expected an object, got {type(data).__name__}")
    combinators = [k for k in ("and", "or", "not") if k in data]
    if combinators:
        if len(data) != 1:
            raise _fail(path, f"{combinators[0]!r} stands alone in its object, got keys {sorted(data)}")
        return _combined(combinators[0], data[combinators[0]], _at(path, combinators[0]))
    return _leaf(data, path)


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _combined(name: str, value: Any, path: str) -> Predicate:
    if name == "not":
        return Not(_node(value, path))
    if not isinstance(value, list) or not value:
        raise _fail(path, "expected a non-empty list of conditions")
    parts = tuple(_node(v, f"{path}[{i}]") for i, v in enumerate(value))
    return And(parts) if name == "and" else Or(parts)


def _leaf(data: dict[str, Any], path: str) -> Predicate:
    field = data.get("field")
    if not isinstance(field, str) or not field.strip() or len(field) > MAX_TEXT:
        raise _fail(_at(path, "field"), "expected a field name (dataset, kind, rating, activity, name…)")
    ops = sorted(set(data) - {"field"})
    if ops and set(ops) <= set(RANGE_KEYS):
        bounds = {k: _scalar(data[k], _at(path, k)) for k in ops}
        return Range(field, **bounds)
    if len(ops) != 1:
        raise _fail(path, f"expected one of eq, in, contains, exists or gt/gte/lt/lte next to field, got {ops}")
    return _operation(field, ops[0], data[ops[0]], _at(path, ops[0]))


def _operation(field: str, op: str, value: Any, path: str) -> Predicate:
    if op == "eq":
        return Eq(field, _scalar(value, path))
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_NODES:
            raise _fail(path, f"expected a list of 1 to {MAX_NODES} values")
        return In(field, tuple(_scalar(v, f"{path}[{i}]") for i, v in enumerate(value)))
    if op == "contains":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            raise _fail(path, f"expected some text (at most {MAX_TEXT} characters)")
        return Contains(field, value)
    if op == "exists":
        if not isinstance(value, bool):
            raise _fail(path, "expected true or false")
        return Exists(field) if value else Not(Exists(field))
    raise _fail(path, "unknown operator; use eq, in, contains, exists, gt, gte, lt or lte")


def _scalar(value: Any, path: str) -> Scalar:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(path, f"expected text or a number, got {value!r}")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _fail(path, f"text longer than {MAX_TEXT} characters")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(path, "expected a finite number")
    return value
