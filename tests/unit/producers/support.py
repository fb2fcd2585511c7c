"""Paths to the real data and fixtures, and small helpers shared by the producer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from core.ports import RawSnapshot, Snapshot
from producers.datasets.alimconfiance import AlimConfianceAdapter
from producers.tabular import parse_csv

ROOT = Path(__file__).resolve().parents[3]
DEMO_DATA = ROOT / "runtime" / "demo_data"
LEGACY = DEMO_DATA / "restaurants-2018-2019.csv"
OFFICIAL = DEMO_DATA / "official-layout-2023-2024-excerpt.csv"
FIXTURES = ROOT / "tests" / "fixtures"
LAYOUT_2026 = FIXTURES / "alimconfiance-2026-layout.jsonl"
BAD_ROWS = FIXTURES / "bad-rows"


def csv_rows(path: Path) -> list[dict[str, Any]]:
    return parse_csv(path.read_bytes()).rows


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def raw(rows: list[dict[str, Any]], *, complete: bool = True, source: str = "test") -> RawSnapshot:
    return RawSnapshot(source, rows, complete, "v1")


def snapshot(rows: list[dict[str, Any]], *, complete: bool = True) -> Snapshot:
    return AlimConfianceAdapter().to_snapshot(raw(rows, complete=complete))
