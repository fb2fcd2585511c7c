"""Domain kinds (new_inspection, downgrade, upgrade, aged_out), the rolling window and rating labels."""

from __future__ import annotations

import pytest

from core.diff import diff
from core.model import Kind, Op, Record
from core.profiles import ALIMCONFIANCE, GENERIC, rating_of
from tests.unit.core.factories import AT, generic, inspection


def kinds_of(previous: list[Record], snapshot: list[Record], *, complete: bool = True) -> dict[str, tuple[str, ...]]:
    changes = diff({r.key: r for r in previous}, snapshot, complete=complete, at=AT, version="v1",
                   profile=ALIMCONFIANCE)
    return {c.key: c.kinds for c in changes}


LAST = inspection("old", entity="e1", date="2025-01-10", rating=1)


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        pytest.param([], inspection("new", rating=3), ("new_inspection",), id="first-inspection"),
        pytest.param([LAST], inspection("new", date="2025-03-01", rating=3), ("new_inspection", "downgrade"),
                     id="worse-than-last"),
        pytest.param([inspection("old", date="2025-01-10", rating=4)], inspection("new", date="2025-03-01", rating=2),
                     ("new_inspection", "upgrade"), id="better-than-last"),
        pytest.param([LAST], inspection("new", date="2025-03-01", rating=1), ("new_inspection",), id="same-rating"),
        pytest.param([LAST], inspection("new", date="2024-12-01", rating=4), ("new_inspection",),
                     id="older-row-claims-no-trend"),
        pytest.param([LAST], inspection("new", date="2025-01-10", rating=2), ("new_inspection", "downgrade"),
                     id="same-day-row-still-compares"),
        pytest.param([LAST], inspection("new", entity="e2", date="2025-03-01", rating=4), ("new_inspection",),
                     id="other-establishment"),
        pytest.param([LAST], inspection("new", date="2025-03-01", rating=None), ("new_inspection",),
                     id="unrated-new-row"),
        pytest.param([inspection("old", date="2025-01-10", rating=None)], inspection("new", date="2025-03-01"),
                     ("new_inspection",), id="unrated-last-row"),
        pytest.param([inspection("a", date="2024-05-01", rating=4), LAST], inspection("new", date="2025-03-01",
                     rating=2), ("new_inspection", "downgrade"), id="compares-with-the-latest-not-the-worst"),
    ],
)
def test_new_inspection_kinds(previous: list[Record], new: Record, expected: tuple[str, ...]) -> None:
    assert kinds_of(previous, [*previous, new])["new"] == expected


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (1, 3, ("downgrade", "updated")),
        (3, 1, ("upgrade", "updated")),
        (2, 2, ("updated",)),
        (None, 2, ("updated",)),
        (2, None, ("updated",)),
    ],
)
def test_in_place_rating_change(before: int | None, after: int | None, expected: tuple[str, ...]) -> None:
    old = inspection("k", rating=before)
    new = inspection("k", rating=after, activity="Traiteur")
    assert kinds_of([old], [new]) == {"k": expected}


NEWEST = inspection("fresh", entity="e9", date="2025-06-30")  # floor = 2025-06-30 - (365 - 7) days = 2024-07-07


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2024-07-06", ("aged_out",)),
        ("2023-01-01", ("aged_out",)),
        ("2024-07-07", ("removed",)),
        ("2025-06-01", ("removed",)),
        ("2024-07-06T10:00:00+02:00", ("aged_out",)),
    ],
)
def test_removal_kinds_follow_the_rolling_window(date: str, expected: tuple[str, ...]) -> None:
    gone = inspection("gone", entity="e1", date=date)
    assert kinds_of([gone, NEWEST], [NEWEST]) == {"gone": expected}


def test_an_incomplete_snapshot_neither_removes_nor_ages_out() -> None:
    gone = inspection("gone", date="2023-01-01")
    assert kinds_of([gone, NEWEST], [NEWEST], complete=False) == {}


def test_an_empty_complete_snapshot_removes_without_window() -> None:
    assert kinds_of([inspection("gone", date="2023-01-01")], []) == {"gone": ("removed",)}


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (["2025-06-30"], "2024-07-07"),
        (["2024-01-01", "2025-06-30T23:59:59", "2025-02-01"], "2024-07-07"),
        (["2024-03-01"], "2023-03-09"),  # across a leap day
        ([], None),
        ([None, ""], None),
        (["2025-06-30", "n/a"], None),  # an unreadable newest date disables the window rather than failing
    ],
)
def test_window_floor(dates: list[str | None], expected: str | None) -> None:
    records = [inspection(f"k{i}", date=d) for i, d in enumerate(dates)]
    assert ALIMCONFIANCE.window_floor(records) == expected


def test_generic_profile_has_no_window_and_no_domain_kinds() -> None:
    assert GENERIC.window_floor([generic("k", date_inspection="2025-01-01")]) is None
    assert GENERIC.order(generic("k", a=1)) == ""
    changes = diff({"a": generic("a", x=1), "b": generic("b", x=1)}, [generic("b", x=2), generic("c", x=1)],
                   complete=True, at=AT, version="v1")
    assert sorted((c.key, c.op, c.kinds) for c in changes) == [
        ("a", Op.REMOVED, ("removed",)), ("b", Op.UPDATED, ("updated",)), ("c", Op.CREATED, ("created",))]


def test_generic_profile_compares_ratings_without_an_order_field() -> None:
    assert GENERIC.kinds(Op.UPDATED, inspection("k", rating=1), inspection("k", rating=4)) == ("downgrade", "updated")


def test_kinds_are_the_model_enum_values() -> None:
    assert ALIMCONFIANCE.created_kind == Kind.NEW_INSPECTION.value == "new_inspection"


@pytest.mark.parametrize(
    ("label", "code", "expected"),
    [
        ("Très satisfaisant", None, 1),
        ("Satisfaisant", None, 2),
        ("A améliorer", None, 3),
        ("À améliorer", None, 3),
        ("à améliorer", None, 3),
        ("A corriger de manière urgente", None, 4),
        ("À corriger de manière urgente", None, 4),
        ("  TRÈS SATISFAISANT ", None, 1),
        ("Tres satisfaisant", None, 1),
        ("A ameliorer", None, 3),
        ("A corriger de maniere urgente", None, 4),
        ("Tre\u0300s satisfaisant", None, 1),  # decomposed (NFD) accent, as some CSV exports write it
        (None, "1", 1),
        (None, "2", 2),
        (None, " 3 ", 3),
        ("Très satisfaisant", "4", 4),  # the code wins
        ("Satisfaisant", "garbage", 2),  # an unreadable code falls back on the label
        (None, "0", None),
        (None, "5", None),
        ("", "", None),
        (None, None, None),
        ("Excellent", None, None),
        ("Satisfaisant!", None, None),
    ],
)
def test_rating_of(label: str | None, code: str | None, expected: int | None) -> None:
    assert rating_of(label, code) == expected


def test_an_inspection_is_partitioned_by_its_siret_whatever_its_establishment() -> None:
    """The establishment changes with its address; the SIRET is part of the inspection key and never does."""
    before = inspection("17-1|123|2025-03-01", entity="123|1 RUE DE RIVOLI", siret="123")
    after = inspection("17-1|123|2025-03-01", entity="123|12 RUE DE RIVOLI", siret="123", address="12 rue de Rivoli")
    follow_up = inspection("17-2|123|2025-05-01", entity="123|12 RUE DE RIVOLI", siret="123")
    keys = {ALIMCONFIANCE.partition_key(r) for r in (before, after, follow_up)}
    assert keys == {"123"}
    assert ALIMCONFIANCE.partition_key(inspection("17-3||2025-03-01", entity="|1 RUE X", siret=None)) == ""


def test_a_generic_record_is_partitioned_by_its_key() -> None:
    assert GENERIC.partition_key(generic("k1", a=1)) == "k1"
