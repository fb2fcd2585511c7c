"""bench/match.py --quick runs and prints its table; its data matches as brute force says (no time asserted)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.index import SubscriptionIndex
from core.match import brute_force

BENCH = Path(__file__).resolve().parents[2] / "bench" / "match.py"


def test_quick_run_prints_the_table() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for layout in ("cities", "even"):
        assert any(line.split()[:2] == [layout, "10000"] for line in lines), result.stdout
    assert any(line.strip().startswith("target 1M") for line in lines)


@pytest.mark.parametrize("layout", ["cities", "even"])
@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_the_bench_data_matches_as_brute_force_says(layout: str, compiled: bool) -> None:
    spec = importlib.util.spec_from_file_location("bench_match", BENCH)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_match"] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(3)
    subs, changes = bench.subscriptions(rng, 3000, layout), bench.changes(rng, 200, layout)
    index = SubscriptionIndex(subs, compiled=compiled)
    found = index.match_many(changes)
    assert found == [brute_force(subs, change) for change in changes]
    assert sum(map(len, found)) > 0
