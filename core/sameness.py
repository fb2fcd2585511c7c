"""When two published values are "the same value": the cosmetic rule against alert storms. Pure.

A publisher that re-cases every commune name ("LE MANS" → "Le Mans"), adds an accent or a double space, writes a
number as 1.0 instead of 1, or re-geocodes a point by a metre has changed nothing a person cares about. A Profile
with `cosmetic` on compares its fields with `same_value` (and points with `same_point`); a record whose
differences are all of this kind is stored silently and alerts nobody.

- text: Unicode-normalised, case-folded, accents and repeated whitespace dropped;
- numbers: equal by value when at least one side has a decimal part (1 = 1.0 = "1,0"); a text of digits only is
  a code and stays text ("01000" is not "1000");
- points: "lat,lon" texts (or Points) closer than `jitter_m` metres.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from core.geo import Point, haversine_m, parse_point

_DECIMAL = re.compile(r"[+-]?(?:\d+[.,]\d*|[.,]\d+)")
_INTEGER = re.compile(r"[+-]?(?:0|[1-9]\d*)")


def fold(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of a text: ' Le  Mâns ' → 'le mans'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def _number(value: Any) -> tuple[Decimal, bool] | None:
    """(value, written with a decimal part) for a number or a text that spells one; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value)), isinstance(value, float)
    text = value.strip() if isinstance(value, str) else ""
    decimal = _DECIMAL.fullmatch(text) is not None
    if not decimal and _INTEGER.fullmatch(text) is None:
        return None
    try:
        return Decimal(text.replace(",", ".")), decimal
    except InvalidOperation:
        return None


def same_value(a: Any, b: Any) -> bool:
    """True when `a` and `b` differ only cosmetically (see the module docstring)."""
    if a == b:
        return True
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return (na[1] or nb[1]) and na[0] == nb[0]
    if isinstance(a, str) and isinstance(b, str):
        return fold(a) == fold(b)
    return False


def same_point(a: Point | None, b: Point | None, jitter_m: float) -> bool:
    """Both absent, or closer than `jitter_m` metres."""
    if a is None or b is None:
        return a is b
    return a == b or haversine_m(a, b) < jitter_m


def same_geo_text(a: Any, b: Any, jitter_m: float) -> bool:
    """Two "lat,lon" texts (as the adapters write the geo field) closer than `jitter_m` metres."""
    if a == b:
        return True
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    try:
        return same_point(parse_point(a), parse_point(b), jitter_m)
    except ValueError:  # not a point on one side: a real change
        return False
