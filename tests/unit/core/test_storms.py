"""The two rules against alert storms: cosmetic differences are no change, mass rewrites are held."""

from __future__ import annotations

from typing import Any

import pytest

from core.diff import diff, diff_one
from core.geo import Point
from core.model import Change, Kind, Op
from core.profiles import ALIMCONFIANCE, GENERIC
from core.sameness import fold, same_point, same_value
from core.storms import MassRule, candidate, notice, split
from tests.unit.core.factories import AT, inspection, updated


@pytest.mark.parametrize(("a", "b", "same"), [
    ("LE MANS", "Le Mans", True), ("Le  Mans ", "le mans", True), ("Eglise", "Église", True),
    ("A améliorer", "À AMÉLIORER", True), ("1", "1.0", True), ("2,5", "2.50", True), (1, "1.0", True),
    (1, 1.0, True), ("Le Mans", "Le Man", False), ("01000", "1000", False), ("1", "2.0", False),
    ("BD CARNOT", "BOULEVARD CARNOT", False), (None, "", False), (None, None, True), ("x", None, False),
    (True, 1, True), ("1.0", True, False),
])
def test_same_value(a: Any, b: Any, same: bool) -> None:
    assert same_value(a, b) is same
    assert same_value(b, a) is same


def test_fold() -> None:
    assert fold("  Saint-Étienne   du  ROUVRAY ") == "saint-etienne du rouvray"


def test_points_closer_than_the_jitter_are_the_same() -> None:
    here = Point(48.0, 2.0)
    assert same_point(here, Point(48.00001, 2.0), 5.0)  # ~1.1 m
    assert not same_point(here, Point(48.0001, 2.0), 5.0)  # ~11 m
    assert same_point(None, None, 5.0)
    assert not same_point(here, None, 5.0)


def recased(**extra: Any) -> tuple[Any, Any]:
    before = inspection("k", commune="LE MANS", address="12  RUE DE LA GARE", geo="48.000000,2.000000",
                        point=Point(48.0, 2.0))
    after = inspection("k", commune="Le Mans", address="12 Rue de la Gare", geo="48.000010,2.000000",
                       point=Point(48.00001, 2.0), **extra)
    return before, after


def test_a_recased_record_is_no_change_for_a_cosmetic_profile() -> None:
    before, after = recased()
    assert before.fingerprint != after.fingerprint
    assert diff_one(before, after, at=AT, version="v2", profile=ALIMCONFIANCE) is None
    generic = diff_one(before, after, at=AT, version="v2", profile=GENERIC)
    assert generic is not None
    assert set(generic.changed) == {"address", "commune", "geo"}


def test_a_real_change_next_to_cosmetic_ones_lists_only_the_real_field() -> None:
    before, after = recased(activity="Traiteur")
    change = diff_one(before, after, at=AT, version="v2", profile=ALIMCONFIANCE)
    assert change is not None
    assert change.changed == ("activity",)


def rewrites(n: int) -> list[Change]:
    return [updated(inspection(f"k{i}", com_name="LE MANS"), inspection(f"k{i}", com_name="Ville du Mans"))
            for i in range(n)]


def test_a_field_rewritten_on_more_than_the_share_is_held_as_one_event() -> None:
    grade = updated(inspection("g", rating=2, com_name="LE MANS"), inspection("g", rating=3, com_name="Ville du Mans"))
    new = diff_one(None, inspection("n"), at=AT, version="v2", profile=ALIMCONFIANCE)
    assert new is not None
    changes = [*rewrites(60), grade, new]
    parted = split(changes, rows=1000, profile=ALIMCONFIANCE, rule=MassRule(share=0.05, minimum=20), source="s")
    assert parted.kept == [grade, new]
    assert len(parted.held) == 60
    assert parted.event is not None
    assert (parted.event.fields, parted.event.count, parted.event.rows) == (("com_name",), 60, 1000)


@pytest.mark.parametrize(("count", "rows", "held"), [(50, 1000, 0), (51, 1000, 51), (19, 100, 0), (20, 100, 20)])
def test_the_share_and_the_minimum(count: int, rows: int, held: int) -> None:
    parted = split(rewrites(count), rows=rows, profile=ALIMCONFIANCE, rule=MassRule(share=0.05, minimum=20),
                   source="s")
    assert len(parted.held) == held
    assert (parted.event is None) is (held == 0)


def test_a_change_of_a_mass_field_and_another_field_is_not_held() -> None:
    both = updated(inspection("b", com_name="LE MANS", name="Chez Paul"),
                   inspection("b", com_name="Ville du Mans", name="Chez Pierre"))
    parted = split([*rewrites(100), both], rows=1000, profile=ALIMCONFIANCE, rule=MassRule(), source="s")
    assert parted.kept == [both]


def test_results_are_never_candidates() -> None:
    grade = updated(inspection("g", rating=2), inspection("g", rating=3))
    assert not candidate(grade, ALIMCONFIANCE)
    assert all(candidate(c, ALIMCONFIANCE) for c in rewrites(3))
    assert not candidate(rewrites(1)[0], GENERIC) or GENERIC.result_fields == frozenset()


def test_the_event_id_is_stable_and_the_notice_carries_its_facts() -> None:
    one = split(rewrites(100), rows=1000, profile=ALIMCONFIANCE, rule=MassRule(), source="s")
    two = split(list(reversed(rewrites(100))), rows=1000, profile=ALIMCONFIANCE, rule=MassRule(), source="s")
    assert one.event is not None
    assert two.event is not None
    assert one.event.id == two.event.id
    told = notice(one.event)
    assert (told.op, told.kinds) == (Op.NOTICE, (Kind.MASS_UPDATE,))
    assert told.current.fields["count"] == 100


def test_a_snapshot_of_recased_rows_diffs_to_nothing() -> None:
    before = {f"k{i}": inspection(f"k{i}", commune="LE MANS") for i in range(10)}
    after = [inspection(f"k{i}", commune="Le Mans") for i in range(10)]
    assert diff(before, after, complete=True, at=AT, version="v2", profile=ALIMCONFIANCE) == []
