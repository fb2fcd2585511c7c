"""diff: properties over random snapshots, then the exact rules on examples."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.diff import apply, changed_fields, diff, diff_one, latest_by_group, refreshed
from core.model import Op, Record
from core.profiles import ALIMCONFIANCE, GENERIC, Profile
from tests.unit.core import strategies as s
from tests.unit.core.factories import AT, LYON, generic, inspection, record

PROPERTY = settings(deadline=None, max_examples=200)


def fingerprints(state: dict[str, Record]) -> dict[str, str]:
    return {k: r.fingerprint for k, r in state.items()}


@PROPERTY
@given(profile=s.profiles, data=st.data())
def test_a_snapshot_diffed_against_itself_yields_nothing(profile: Profile, data: st.DataObject) -> None:
    state = data.draw(s.states(profile))
    for complete in (True, False):
        assert diff(state, state.values(), complete=complete, at=AT, version="v1", profile=profile) == []


@PROPERTY
@given(profile=s.profiles, data=st.data())
def test_applying_a_complete_diff_gives_the_snapshot(profile: Profile, data: st.DataObject) -> None:
    previous, snapshot = data.draw(s.transitions(profile))
    changes = diff(previous, snapshot.values(), complete=True, at=AT, version="v1", profile=profile)
    silent = refreshed(previous, snapshot.values(), changes)
    assert fingerprints(apply(previous, changes) | {r.key: r for r in silent}) == fingerprints(snapshot)
    assert len({c.key for c in changes}) == len(changes)


@PROPERTY
@given(profile=s.profiles, data=st.data())
def test_an_incomplete_snapshot_never_removes(profile: Profile, data: st.DataObject) -> None:
    previous, snapshot = data.draw(s.transitions(profile))
    changes = diff(previous, snapshot.values(), complete=False, at=AT, version="v1", profile=profile)
    assert all(c.op is not Op.REMOVED and c.after is not None for c in changes)
    state = apply(previous, changes) | {r.key: r for r in refreshed(previous, snapshot.values(), changes)}
    assert state.keys() == previous.keys() | snapshot.keys()
    assert all(state[k].fingerprint == r.fingerprint for k, r in snapshot.items())


@PROPERTY
@given(profile=s.profiles, data=st.data())
def test_change_ids_are_deterministic_and_tied_to_the_source_version(profile: Profile, data: st.DataObject) -> None:
    previous, snapshot = data.draw(s.transitions(profile))

    def ids(version: str, at_offset: int = 0) -> list[str]:
        at = AT + timedelta(hours=at_offset)
        return [c.id for c in diff(previous, snapshot.values(), complete=True, at=at, version=version,
                                   profile=profile)]

    assert ids("v1") == ids("v1", at_offset=5)
    assert set(ids("v1")).isdisjoint(ids("v2"))
    assert len(set(ids("v1"))) == len(ids("v1"))


@PROPERTY
@given(data=st.data())
def test_volatile_fields_never_cause_a_change(data: st.DataObject) -> None:
    state = data.draw(s.states(ALIMCONFIANCE))
    refreshed = [record(ALIMCONFIANCE, r.key, {**r.fields, "date_extraction": data.draw(s.iso_dates)}, group=r.group)
                 for r in state.values()]
    assert diff(state, refreshed, complete=True, at=AT, version="v2", profile=ALIMCONFIANCE) == []


@PROPERTY
@given(data=st.data())
def test_changed_fields_never_list_volatile_ones(data: st.DataObject) -> None:
    previous, snapshot = data.draw(s.transitions(ALIMCONFIANCE))
    changes = diff(previous, snapshot.values(), complete=True, at=AT, version="v1", profile=ALIMCONFIANCE)
    assert all("date_extraction" not in c.changed for c in changes)
    assert all(c.changed for c in changes if c.op is Op.UPDATED)


# Values that compare equal in Python but serialise differently: None and absent, 1 and 1.0 and True.
lax_values = s.generic_values | st.none() | st.sampled_from((1.0, True, False, 0.0))


@PROPERTY
@given(data=st.data())
def test_rows_equal_field_by_field_are_refreshed_silently(data: st.DataObject) -> None:
    """When fingerprints differ but `changed_fields` sees nothing (a field on one side only, 1 vs 1.0), diff
    emits nothing and `refreshed` hands the record over, so the state catches up without an alert."""
    previous, snapshot = data.draw(s.transitions(GENERIC, lax_values))
    changes = diff(previous, snapshot.values(), complete=True, at=AT, version="v1", profile=GENERIC)
    silent = refreshed(previous, snapshot.values(), changes)
    for quiet in silent:
        assert changed_fields(previous[quiet.key], quiet) == ()
    state = apply(previous, changes) | {r.key: r for r in silent}
    assert fingerprints(state) == fingerprints(snapshot)


def test_a_layout_that_gains_columns_is_not_an_update() -> None:
    before = inspection("k1")
    after = inspection("k1", code_ua="UA-1", type_suite="Aucune")
    assert diff({"k1": before}, [after], complete=True, at=AT, version="v2", profile=ALIMCONFIANCE) == []
    assert refreshed({"k1": before}, [after], []) == [after]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"a": 1}, {"a": 1}, ()),
        ({"a": 1}, {"a": 2}, ("a",)),
        # a field present on one side only is a layout change, not a data change
        ({"a": 1}, {}, ()),
        ({}, {"b": "x"}, ()),
        ({"a": 1, "b": 2}, {"b": 3, "c": 4}, ("b",)),
        ({"a": None}, {}, ()),
        ({}, {"a": None}, ()),
        # Python equality, not JSON identity
        ({"a": 1}, {"a": 1.0}, ()),
        ({"a": 1}, {"a": True}, ()),
        ({"a": "1"}, {"a": 1}, ("a",)),
    ],
)
def test_changed_fields(before: dict[str, object], after: dict[str, object], expected: tuple[str, ...]) -> None:
    assert changed_fields(generic("k", **before), generic("k", **after)) == expected


def test_changed_fields_skip_the_profiles_volatile_fields() -> None:
    before = inspection("k", name="Chez Paul", date_extraction="2025-01-01")
    after = inspection("k", name="Chez Pierre", date_extraction="2025-02-01")
    assert changed_fields(before, after, ALIMCONFIANCE) == ("name",)
    assert changed_fields(before, after, GENERIC) == ("date_extraction", "name")


def test_fingerprint_ignores_volatile_fields_and_key_order() -> None:
    assert ALIMCONFIANCE.fingerprint({"a": 1, "date_extraction": "x"}) == ALIMCONFIANCE.fingerprint({"a": 1})
    assert GENERIC.fingerprint({"a": 1, "b": 2}) == GENERIC.fingerprint({"b": 2, "a": 1})
    assert GENERIC.fingerprint({"a": 1}) != GENERIC.fingerprint({"a": 2})


def test_a_created_change_lists_every_non_volatile_field() -> None:
    change = diff_one(None, inspection("k"), at=AT, version="v1", profile=ALIMCONFIANCE)
    assert change is not None
    assert change.op is Op.CREATED
    assert "date_extraction" not in change.changed
    assert change.changed == tuple(sorted(set(inspection("k").fields) - {"date_extraction"}))


def test_a_moved_record_with_equal_fields_is_an_update_without_changed_fields() -> None:
    before = generic("k", a=None)
    after = record(GENERIC, "k", {}, point=LYON)
    change = diff_one(before, after, at=AT, version="v1")
    assert change is not None
    assert (change.op, change.kinds, change.changed) == (Op.UPDATED, ("updated",), ())


@pytest.mark.parametrize(("before", "after"), [({"a": None}, {}), ({"a": 1}, {"a": 1.0}), ({"a": 0}, {"a": False})])
def test_different_fingerprints_with_equal_fields_are_not_a_change(
    before: dict[str, object], after: dict[str, object]
) -> None:
    old, new = generic("k", **before), generic("k", **after)
    assert old.fingerprint != new.fingerprint
    assert diff_one(old, new, at=AT, version="v1") is None
    assert apply({"k": old}, diff({"k": old}, [new], complete=True, at=AT, version="v1")) == {"k": old}


def test_an_identical_fingerprint_is_never_a_change_even_if_the_point_differs() -> None:
    before = generic("k", a=1)
    after = record(GENERIC, "k", {"a": 1}, point=LYON)
    assert diff_one(before, after, at=AT, version="v1") is None


def test_change_carries_both_sides_time_and_version() -> None:
    before, after = generic("k", a=1), generic("k", a=2)
    [change] = diff({"k": before}, [after], complete=True, at=AT, version="v7")
    assert (change.before, change.after, change.detected_at, change.source_version) == (before, after, AT, "v7")
    assert (change.dataset, change.key, change.current) == ("generic", "k", after)


def test_removed_change_keeps_the_last_seen_record() -> None:
    before = generic("k", a=1)
    [change] = diff({"k": before}, [], complete=True, at=AT, version="v1")
    assert (change.op, change.kind, change.after, change.current, change.changed) == (
        Op.REMOVED, "removed", None, before, ())


def test_latest_by_group_uses_the_order_field_and_the_key_without_group() -> None:
    old, new = inspection("a", entity="e1", date="2024-01-01"), inspection("b", entity="e1", date="2025-01-01")
    lone = generic("c", a=1)
    assert latest_by_group([new, old], ALIMCONFIANCE) == {"e1": new}
    assert latest_by_group([old, new, lone], ALIMCONFIANCE) == {"e1": new, "c": lone}
