"""Two successive Alim'Confiance snapshots built from real 2018-2019 inspections (runtime/demo_data/).

The live dataset is a rolling ~12 months of inspections republished weekly. The demo replays that:

- snapshot 1 is published four weeks before snapshot 2 and holds inspections up to four weeks before
  the newest one, minus ~2% of those of its last five months: results published late;
- snapshot 2 holds inspections up to the newest one, and the late ones: `new_inspection`s, some dated
  up to five months back. Each publication keeps the 365 days before it, so the oldest inspections
  leave: `aged_out`;
- a handful of deterministic edits of real rows show the other kinds: a rating corrected down and one
  up (`downgrade`/`upgrade` + `updated`), an address fixed (`updated`: an abbreviation spelled out, as a
  whitespace-only fix is cosmetic and alerts nobody), two inspections withdrawn
  (`removed`), and one follow-up inspection of a real restaurant, rated worse (`new_inspection` +
  `downgrade`; synthetic, derived from the real row it follows).

Deterministic: no randomness, the same files give the same snapshots. Rows are in ODS v2.1 JSON form
with the official lowercase field names (geores as {"lon", "lat"}, dates as UTC ISO datetimes).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
RESTAURANTS = "restaurants-2018-2019.csv"
DATASET_ID = "export_alimconfiance"
WINDOW = timedelta(days=365)
STEP = timedelta(days=28)
PUBLICATION_LAG = timedelta(days=7)
LATE_SPAN = timedelta(days=150)
LATE_ONE_IN = 50
RATING_CODES = {"Très satisfaisant": "1", "Satisfaisant": "2", "A améliorer": "3",
                "A corriger de manière urgente": "4"}
# official field (2019-2025 layout order) ← column of the 2018 export
LEGACY_TO_OFFICIAL = {
    "app_libelle_etablissement": "APP_Libelle_etablissement", "siret": "SIRET", "adresse_2_ua": "ods_adresse",
    "code_postal": "Code_postal", "libelle_commune": "Libelle_commune", "numero_inspection": "Numero_inspection",
    "date_inspection": "Date_inspection",
    "app_libelle_activite_etablissement": "APP_Libelle_activite_etablissement",
    "synthese_eval_sanit": "Synthese_eval_sanit", "app_code_synthese_eval_sanit": "",
    "agrement": "Agrement", "geores": "geores", "filtre": "filtre", "ods_type_activite": "ods_type_activite",
}

Row = dict[str, Any]
_SPELLED = {"BD": "BOULEVARD", "AV": "AVENUE", "RTE": "ROUTE"}
_ABBREVIATED = re.compile(r"\b(BD|AV|RTE)\b")


@dataclass(frozen=True, slots=True)
class DemoSnapshot:
    rows: list[Row]
    modified: datetime
    label: str


@dataclass(frozen=True, slots=True)
class Edit:
    """One deterministic change made to a real row for the demo, and the change kind it should show.

    `key` is the inspection key (numero_inspection|siret|YYYY-MM-DD), as the Alim'Confiance adapter builds it.
    """

    kind: str
    key: str
    what: str


@dataclass(frozen=True, slots=True)
class DemoStory:
    first: DemoSnapshot
    second: DemoSnapshot
    edits: tuple[Edit, ...]


def _geores(text: str) -> dict[str, float] | None:
    lat, _, lon = text.partition(",")
    return {"lon": float(lon), "lat": float(lat)} if lon.strip() else None


def _utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


def to_ods(legacy: dict[str, str]) -> Row:
    """A row of the 13-column 2018 export in ODS v2.1 JSON form with the official field names."""
    row: Row = {name: (legacy.get(old) or "").strip() or None for name, old in LEGACY_TO_OFFICIAL.items()}
    row["date_inspection"] = _utc(legacy["Date_inspection"])
    row["app_code_synthese_eval_sanit"] = RATING_CODES.get(legacy["Synthese_eval_sanit"])
    row["geores"] = _geores(legacy.get("geores") or "")
    return row


def load_rows(data_dir: Path = DEMO_DATA) -> list[Row]:
    """The 15,463 real restaurant inspections of 2018-08-25 → 2019-08-22, in ODS v2.1 JSON form."""
    with (data_dir / RESTAURANTS).open(encoding="utf-8", newline="") as handle:
        return [to_ods(r) for r in csv.DictReader(handle, delimiter=";")]


def day_of(row: Row) -> date:
    """The inspection's day in France (the published datetimes are UTC)."""
    return datetime.fromisoformat(str(row["date_inspection"])).astimezone(PARIS).date()


def _late(row: Row) -> bool:
    """About one row in LATE_ONE_IN, chosen by a digest of its inspection number (stable across runs)."""
    digest = hashlib.blake2b(str(row["numero_inspection"]).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % LATE_ONE_IN == 0


def _published(at: date) -> datetime:
    return datetime.combine(at, time(6, 0), tzinfo=UTC)


def _identity(row: Row) -> tuple[str, str, str]:
    return str(row["numero_inspection"]), str(row["siret"]), str(row["date_inspection"])


def key_of(row: Row) -> str:
    """The inspection key (local date of the inspection, as the adapter reads it)."""
    return f"{row['numero_inspection']}|{row['siret'] or ''}|{day_of(row).isoformat()}"


def _rated(label: str) -> Callable[[Row], bool]:
    return lambda row: row["synthese_eval_sanit"] == label


def _set_rating(row: Row, label: str) -> None:
    row["synthese_eval_sanit"], row["app_code_synthese_eval_sanit"] = label, RATING_CODES[label]


def _follow_up(row: Row, newest: date, taken: set[str]) -> Row:
    """A synthetic re-inspection of `row`'s restaurant on the newest day, rated urgent."""
    number = str(row["numero_inspection"])
    follow = f"{number}-2"
    while follow in taken:
        follow += "b"
    new = {**row, "numero_inspection": follow, "date_inspection": _published(newest).replace(hour=0).isoformat()}
    _set_rating(new, "A corriger de manière urgente")
    return new


def _edit(rows: list[Row], in_first: set[tuple[str, str, str]], newest: date) -> tuple[list[Row], list[Edit]]:
    """Apply the demo's edits to (copies of) snapshot 2's rows; candidates are mid-window rows of both."""
    rows = [dict(r) for r in rows]
    span = (newest - timedelta(days=150), newest - timedelta(days=90))
    pool = [r for r in rows if _identity(r) in in_first and span[0] <= day_of(r) <= span[1]
            and len(str(r["numero_inspection"])) > 3]

    def take(test: Callable[[Row], bool]) -> Row:
        found = next(r for r in pool if test(r))
        pool.remove(found)
        return found

    edits = []
    down, up = take(_rated("Satisfaisant")), take(_rated("A améliorer"))
    _set_rating(down, "A améliorer")
    _set_rating(up, "Satisfaisant")
    edits += [Edit("downgrade", key_of(down), "rating corrected: Satisfaisant → A améliorer"),
              Edit("upgrade", key_of(up), "rating corrected: A améliorer → Satisfaisant")]
    fixed = take(lambda r: _ABBREVIATED.search(r["adresse_2_ua"] or "") is not None)
    spelled = _ABBREVIATED.sub(lambda m: _SPELLED[m[0]], fixed["adresse_2_ua"])
    edits.append(Edit("updated", key_of(fixed), f"address fixed: {fixed['adresse_2_ua']!r} → {spelled!r}"))
    fixed["adresse_2_ua"] = spelled
    for gone in (take(lambda r: True), take(lambda r: True)):
        rows.remove(gone)
        edits.append(Edit("removed", key_of(gone), "inspection withdrawn by the publisher"))
    origin = take(lambda r: r["geores"] is not None and _rated("Satisfaisant")(r))
    follow = _follow_up(origin, newest, {str(r["numero_inspection"]) for r in rows})
    rows.append(follow)
    edits.append(Edit("new_inspection", key_of(follow),
                      f"follow-up of {origin['numero_inspection']} (synthetic), rated urgent: downgrade"))
    return rows, edits


def build_snapshots(data_dir: Path = DEMO_DATA) -> DemoStory:
    """The two publications of the demo, four weeks apart, and the edits made to real rows."""
    rows = sorted(load_rows(data_dir), key=_identity)
    newest = max(day_of(r) for r in rows)
    end1, published2 = newest - STEP, newest + PUBLICATION_LAG
    published1 = published2 - STEP
    first = [r for r in rows if published1 - WINDOW <= day_of(r) <= end1
             and not (day_of(r) >= end1 - LATE_SPAN and _late(r))]
    second, edits = _edit([r for r in rows if published2 - WINDOW <= day_of(r)],
                          {_identity(r) for r in first}, newest)
    return DemoStory(
        DemoSnapshot(first, _published(published1), f"inspections up to {end1.isoformat()}"),
        DemoSnapshot(second, _published(published2), f"inspections up to {newest.isoformat()}"),
        tuple(edits),
    )
