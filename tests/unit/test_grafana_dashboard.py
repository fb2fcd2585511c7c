"""deploy/grafana/vigie.json queries only series Vigie exports (runtime/metrics.py), so the two cannot drift."""

from __future__ import annotations

import json
import re
from pathlib import Path

from runtime.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "vigie.json"
SERIES = re.compile(r"\b((?:vigie|process)_[a-z_]+)\b")


def exported() -> set[str]:
    """Every sample name the registry can expose (counters' _total, histograms' _bucket/_sum/_count...)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names |= {family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_sum",
                  f"{family.name}_count", f"{family.name}_created"}
    return names


def test_every_panel_queries_an_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for q in queries for name in SERIES.findall(q)}
    assert used, "the dashboard queries something"
    assert used <= exported(), f"not exported: {sorted(used - exported())}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
