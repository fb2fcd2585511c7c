"""The snapshot rules both runtimes share: what may remove, what is a baseline, what alerts."""

from __future__ import annotations

import pytest

from core.ports import Snapshot
from core.snapshots import judge, scoped
from tests.unit.core.factories import inspection


def snapshot(rows: int, *, complete: bool = True, problem: str | None = None, source: str = "s") -> Snapshot:
    return Snapshot("alimconfiance", source, [inspection(f"k{i}") for i in range(rows)], complete, "v1",
                    problem=problem)


@pytest.mark.parametrize(("rows", "complete", "problem", "known", "removes"), [
    (10, True, None, 0, True), (10, True, None, 15, True), (10, True, None, 21, False),
    (10, False, None, 0, False), (10, True, "truncated download", 0, False),
])
def test_what_may_remove(rows: int, complete: bool, problem: str | None, known: int, removes: bool) -> None:
    verdict = judge(snapshot(rows, complete=complete, problem=problem), known_rows=known, trusted_before=True,
                    min_ratio=0.5)
    assert verdict.complete is removes
    assert (verdict.problem is None) is (problem is None and known <= 2 * rows)


@pytest.mark.parametrize(("trusted", "baseline_alerts", "first", "alerts"), [
    (False, False, True, False), (False, True, True, True), (True, False, False, True), (True, True, False, True),
])
def test_the_first_trusted_snapshot_is_a_baseline(trusted: bool, baseline_alerts: bool, first: bool,
                                                  alerts: bool) -> None:
    verdict = judge(snapshot(3), known_rows=0, trusted_before=trusted, min_ratio=0.5,
                    baseline_alerts=baseline_alerts)
    assert (verdict.first, verdict.alerts) == (first, alerts)


def test_state_is_kept_per_configured_url() -> None:
    assert scoped("s", snapshot(1)) == snapshot(1)
    moved = scoped("ods+https://portal/x", snapshot(1, source="https://portal/x/exports/csv"), "truncated")
    assert (moved.source, moved.problem) == ("ods+https://portal/x", "truncated")
