"""The demo's two snapshots: deterministic, a moving 12-month window, late results, and every change kind."""

from __future__ import annotations

import functools
from datetime import timedelta

from runtime.demo.snapshots import DEMO_DATA, LATE_SPAN, DemoStory, build_snapshots, day_of, key_of, load_rows


@functools.cache
def story() -> DemoStory:
    return build_snapshots()


def test_rows_are_the_real_ones_in_ods_v21_form() -> None:
    rows = load_rows()
    assert len(rows) == 15_463
    first = rows[0]
    assert first["numero_inspection"] == "19-048897-1"
    assert first["date_inspection"] == "2019-03-22T00:00:00+00:00"
    assert first["geores"] == {"lon": 0.600709, "lat": 44.488403}
    assert first["app_code_synthese_eval_sanit"] == "1"
    assert first["adresse_2_ua"] == "LD LE BOURG"
    assert first["agrement"] is None
    assert list(first)[:3] == ["app_libelle_etablissement", "siret", "adresse_2_ua"]
    assert (DEMO_DATA / "README.md").exists()


def test_deterministic() -> None:
    again = build_snapshots()
    assert again.first.rows == story().first.rows
    assert again.second.rows == story().second.rows
    assert again.edits == story().edits


def test_the_window_moves_forward() -> None:
    first, second = story().first, story().second
    newest = max(day_of(r) for r in second.rows)
    assert max(day_of(r) for r in first.rows) <= newest - timedelta(days=28)
    assert second.modified - first.modified == timedelta(days=28)
    aged = {key_of(r) for r in first.rows} - {key_of(r) for r in second.rows}
    oldest_kept = min(day_of(r) for r in second.rows)
    assert sum(1 for r in first.rows if key_of(r) in aged and day_of(r) < oldest_kept) == 104


def test_late_results_appear_up_to_five_months_back() -> None:
    first_keys = {key_of(r) for r in story().first.rows}
    end1 = max(day_of(r) for r in story().first.rows)
    late = [r for r in story().second.rows if key_of(r) not in first_keys and day_of(r) <= end1]
    assert len(late) > 50
    assert min(day_of(r) for r in late) >= end1 - LATE_SPAN
    assert min(day_of(r) for r in late) <= end1 - timedelta(days=120)


def test_edits_cover_every_kind() -> None:
    assert sorted(e.kind for e in story().edits) == [
        "downgrade", "new_inspection", "removed", "removed", "updated", "upgrade"]
    second = {key_of(r) for r in story().second.rows}
    for edit in story().edits:
        assert (edit.key in second) is (edit.kind != "removed")


def test_snapshot_one_rows_are_not_mutated_by_the_edits() -> None:
    downgraded = next(e.key for e in story().edits if e.kind == "downgrade")
    before = next(r for r in story().first.rows if key_of(r) == downgraded)
    after = next(r for r in story().second.rows if key_of(r) == downgraded)
    assert (before["synthese_eval_sanit"], after["synthese_eval_sanit"]) == ("Satisfaisant", "A améliorer")
