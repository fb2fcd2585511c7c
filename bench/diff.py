"""Diffing a national Alim'Confiance snapshot: a naive baseline against Vigie's path, in one process.

    python bench/diff.py [--rows 72600] [--runs 5]

The real 2018-2019 rows shipped in runtime/demo_data/ are replicated to the size of the live dataset
(~72.6k rows, each copy with a unique synthetic numero_inspection suffix). "previous" is that
snapshot; "current" adds ~170 inspections, drops a few and corrects a few in place, like a real day.

- naive: validate every row with a pydantic model, then compare every field of every row by key with
  the previous rows (validated before timing);
- vigie, steady state: AlimConfianceAdapter.to_snapshot + core.diff.diff against the previous records
  (the state a store holds, built before timing), by an adapter that mapped the previous snapshot, as
  a running producer or `vigie run` has: unchanged rows are recognised by the digest of their raw form
  and not mapped again;
- vigie, cold: the same with a fresh adapter (the first poll after a start), every row mapped.

Both start from decoded rows (the JSONL parse is the same for both and printed apart). Prints rows/s,
the ratio, and seconds per snapshot against the 1.5 s target: CPU time of the best of N runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.diff import diff
from core.model import Record
from core.ports import RawSnapshot
from core.profiles import ALIMCONFIANCE
from producers.datasets.alimconfiance import AlimConfianceAdapter
from runtime.demo.snapshots import load_rows

TARGET_S = 1.5
T = TypeVar("T")
ADDED, REMOVED, CHANGED = 170, 6, 12
Row = dict[str, Any]


class GeoPoint(BaseModel):
    lon: float
    lat: float


class Inspection(BaseModel):
    """The naive way: one pydantic model per row of the official layout."""

    app_libelle_etablissement: str | None = None
    siret: str | None = None
    adresse_2_ua: str | None = None
    code_postal: str | None = None
    libelle_commune: str | None = None
    numero_inspection: str
    date_inspection: datetime
    app_libelle_activite_etablissement: str | None = None
    synthese_eval_sanit: str | None = None
    app_code_synthese_eval_sanit: str | None = None
    agrement: str | None = None
    geores: GeoPoint | None = None
    filtre: str | None = None
    ods_type_activite: str | None = None


def scaled(rows: list[Row], size: int) -> list[Row]:
    out: list[Row] = []
    copy = 0
    while len(out) < size:
        out.extend({**r, "numero_inspection": f"{r['numero_inspection']}-{copy}"} for r in rows[: size - len(out)])
        copy += 1
    return out


def evolve(previous: list[Row]) -> list[Row]:
    """~170 new inspections (copies of real rows with new numbers), a few removed, a few corrected."""
    step = len(previous) // (REMOVED + CHANGED + 1)
    removed = {step * (i + 1) for i in range(REMOVED)}
    changed = {step * (REMOVED + i + 1) for i in range(CHANGED)}
    current = [{**r, "synthese_eval_sanit": "A améliorer", "app_code_synthese_eval_sanit": "3"}
               if i in changed else r for i, r in enumerate(previous) if i not in removed]
    current += [{**previous[i * 97], "numero_inspection": f"NEW-{i}"} for i in range(ADDED)]
    return current


def validated(rows: list[Row]) -> dict[tuple[Any, ...], Row]:
    return {(m.numero_inspection, m.siret, m.date_inspection): m.model_dump()
            for m in map(Inspection.model_validate, rows)}


def naive(before: dict[tuple[Any, ...], Row], current: list[Row]) -> int:
    return compare(before, validated(current))


def compare(before: dict[tuple[Any, ...], Row], after: dict[tuple[Any, ...], Row]) -> int:
    changes = len(after.keys() - before.keys()) + len(before.keys() - after.keys())
    for key, fields in after.items():
        old = before.get(key)
        if old is not None and any(old[name] != value for name, value in fields.items()):
            changes += 1
    return changes


def vigie(adapter: AlimConfianceAdapter, state: dict[str, Record], current: list[Row]) -> int:
    snapshot = adapter.to_snapshot(RawSnapshot("bench", current, True, "v2"))
    changes = diff(state, snapshot.records, complete=snapshot.complete, at=datetime.now(UTC), version="v2",
                   profile=ALIMCONFIANCE)
    return len(changes)


def best(run: Callable[[T], int], runs: int, prepare: Callable[[], T]) -> tuple[float, int]:
    """CPU seconds of the fastest run (steadier than wall time on a shared machine), and its result.

    `prepare` builds each run's input outside the timing.
    """
    timings, result = [], 0
    for _ in range(runs):
        given = prepare()
        started = time.process_time()
        result = run(given)
        timings.append(time.process_time() - started)
    return min(timings), result


def warm_adapter(previous: list[Row]) -> AlimConfianceAdapter:
    """An adapter that mapped the previous snapshot, as a running producer keeps it."""
    adapter = AlimConfianceAdapter()
    adapter.to_snapshot(RawSnapshot("bench", previous, True, "v1"))
    return adapter


def line(label: str, seconds: float, rows: int, note: str = "") -> str:
    return f"  {label:<38}{seconds:6.3f} s  {rows / seconds:>10,.0f} rows/s  {note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=72_600)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    previous = scaled(load_rows(), args.rows)
    current = evolve(previous)
    n, runs = len(current), args.runs
    export = b"".join(orjson.dumps(r) + b"\n" for r in current)
    parse_s, _ = best(lambda data: len([orjson.loads(x) for x in data.splitlines()]), runs, lambda: export)
    state = {r.key: r for r in AlimConfianceAdapter().to_snapshot(RawSnapshot("b", previous, True, "v1")).records}
    before = validated(previous)
    naive_s, naive_changes = best(lambda rows: naive(before, rows), runs, lambda: current)
    compare_s, _ = best(lambda after: compare(before, after), runs, lambda: validated(current))
    cold_s, cold_changes = best(lambda adapter: vigie(adapter, state, current), runs,
                                lambda: AlimConfianceAdapter(remember=False))
    warm_s, warm_changes = best(lambda adapter: vigie(adapter, state, current), runs,
                                lambda: warm_adapter(previous))
    mapped_s, _ = best(lambda adapter: len(adapter.to_snapshot(RawSnapshot("b", current, True, "v")).records),
                       runs, lambda: AlimConfianceAdapter(remember=False))
    print(f"{n} rows in the current snapshot, {len(previous)} before; CPU time, best of {runs} runs")
    print(line("JSONL parse (orjson, both paths)", parse_s, n))
    print(line("naive: pydantic + field compare", naive_s, n,
               f"{naive_changes} changes (comparison alone {compare_s:.3f} s)"))
    print(line("vigie, steady state: map + diff", warm_s, n, f"{warm_changes} changes"))
    print(line("vigie, cold (first poll): map + diff", cold_s, n,
               f"{cold_changes} changes (mapping alone {mapped_s:.3f} s)"))
    print(f"  ratio naive / vigie: steady state {naive_s / warm_s:.2f}x, cold {naive_s / cold_s:.2f}x")
    for label, seconds in ((" steady state", warm_s), (" cold", cold_s)):
        per_national = (seconds + parse_s) * 72_600 / n
        print(f"  vigie{label}, parse included, for 72.6k rows: {per_national:.3f} s (target {TARGET_S} s)")


if __name__ == "__main__":
    main()
