"""Alim'Confiance rows → inspection Records, whatever the published layout.

Three real layouts, told apart by their column names (case-insensitive):

- ``legacy-2018``: the 13-column export (APP_Libelle_etablissement, ods_adresse, geores "lat, lon", …);
- ``official-2019``: the official 20 fields of 2019-2025 (adresse_2_ua, app_code_synthese_eval_sanit, com_code…);
- ``bdnu-2026``: ~57 fields (code_ua, adresse_activite, libelle_etablissement, evaluation_globale,
  date_extraction, date_de_cessation_bdnu…).

Every row becomes the same canonical fields (`CANONICAL`), so the same facts fingerprint the same
in every layout and export format (JSON or CSV): text is stripped, empty means None, dates are
``YYYY-MM-DD`` in Europe/Paris, the location is ``geo = "lat,lon"`` with 6 decimals. The fingerprint
covers the canonical facts only: ``code_ua`` names the establishment (it is the group) and columns
beyond the canonical ones are carried in `fields` under their own lowercase names but left out of
the fingerprint, so a layout switch does not re-notify 72k unchanged inspections. ``date_extraction``
(volatile) and the raw geo column are dropped.

Unreadable rows are quarantined with a one-line reason; everything else flows on. A quarantined row
is absent from the snapshot, so a complete snapshot would report its earlier record as removed: when
more than 5% of the rows are unreadable the snapshot is marked incomplete (no removals at all).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from core.geo import AdminCodes, Point, parse_point
from core.model import Record
from core.ports import Quarantined, RawSnapshot, Snapshot
from core.profiles import ALIMCONFIANCE, rating_of
from producers.tabular import ROW_ERROR, ROW_EXTRA

log = logging.getLogger(__name__)

PARIS = ZoneInfo("Europe/Paris")
MAX_QUARANTINED_SHARE = 0.05

# canonical field → the columns that publish it, newest layout first
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("libelle_etablissement", "app_libelle_etablissement"),
    "siret": ("siret",),
    "address": ("adresse_activite", "adresse_2_ua", "ods_adresse"),
    "postcode": ("code_postal",),
    "commune": ("libelle_commune",),
    "numero_inspection": ("numero_inspection",),
    "date_inspection": ("date_inspection",),
    "activity": ("app_libelle_activite_etablissement", "libelle_activite_etablissement"),
    "rating_label": ("synthese_eval_sanit", "evaluation_globale"),
    "agrement": ("agrement",),
    "com_code": ("com_code",),
    "com_name": ("com_name",),
    "dep_code": ("dep_code",),
    "dep_name": ("dep_name",),
    "reg_code": ("reg_code",),
    "reg_name": ("reg_name",),
    "code_ua": ("code_ua",),
}
CANONICAL = (*ALIASES, "geo")
RATING_CODE = ("app_code_synthese_eval_sanit", "code_synthese_eval_sanit")
GEO_COLUMNS = ("geores", "geo_point_2d", "geolocalisation", "coordonnees")
DROPPED = frozenset({*ALIMCONFIANCE.volatile, *GEO_COLUMNS, ROW_ERROR, ROW_EXTRA})
LAYOUT_MARKERS = (("bdnu-2026", "code_ua"), ("bdnu-2026", "adresse_activite"),
                  ("official-2019", "adresse_2_ua"), ("official-2019", "app_code_synthese_eval_sanit"),
                  ("legacy-2018", "ods_adresse"))
_NOT_WORD = re.compile(r"[\W_]+")


def detect_layout(columns: Iterable[str]) -> str:
    """`bdnu-2026`, `official-2019`, `legacy-2018` or `unknown`, from column names."""
    names = {c.lower() for c in columns}
    return next((layout for layout, marker in LAYOUT_MARKERS if marker in names), "unknown")


def departement_of(postcode: str | None) -> str | None:
    """Département from a postcode: 2A/2B for Corsica, 3 digits overseas (97x, 98x), else 2 digits."""
    if not postcode or len(postcode) != 5 or not postcode.isdigit():
        return None
    if postcode.startswith("20"):
        return "2A" if postcode < "20200" else "2B"
    if postcode.startswith(("97", "98")):
        return postcode[:3]
    return postcode[:2]


def normalise_address(text: str | None) -> str:
    """Upper case, punctuation removed, spaces collapsed: `4  bd. Carnot` → `4 BD CARNOT`."""
    return " ".join(_NOT_WORD.split((text or "").upper())).strip()


def iso_date(value: str) -> str | None:
    """`YYYY-MM-DD` from an ISO date or datetime (taken in Europe/Paris) or `DD/MM/YYYY`; None if unreadable."""
    s = value.strip()
    try:
        if len(s) > 10 and s[4:5] == "-":
            moment = datetime.fromisoformat(s)
            return (moment.astimezone(PARIS) if moment.tzinfo else moment).date().isoformat()
        if len(s) == 10 and s[4] == "-":
            return date.fromisoformat(s).isoformat()
        if len(s) == 10 and s[2] == "/" and s[5] == "/":
            return date(int(s[6:]), int(s[3:5]), int(s[:2])).isoformat()
    except ValueError:
        return None
    return None


class RowError(Exception):
    """Internal: why one row cannot become a Record (becomes a Quarantined reason)."""


def _text(value: Any) -> str | None:
    """A published value as the CSV export writes it: text stripped, numbers as text, a multivalued field
    (a JSON list, e.g. two activities) joined with `|` as in the CSV."""
    if value.__class__ is str:
        return value.strip() or None
    if isinstance(value, list | tuple):
        return "|".join(t for v in value if (t := _text(v)) is not None) or None
    return None if value is None else str(value)


def _check_decoded(facts: Mapping[str, Any]) -> None:
    for column, value in facts.items():
        if value.__class__ is str and "\ufffd" in value:
            raise RowError(f"undecodable text (U+FFFD) in {column}")


class _Mapper:
    """One snapshot's column plan and caches; `record(row)` is the hot path (plain dict work)."""

    def __init__(self, columns: set[str]) -> None:
        sources = {canon: next((c for c in names if c in columns), None) for canon, names in ALIASES.items()}
        self.ua_column = sources.pop("code_ua")
        self.plan = [(canon, src) for canon, src in sources.items() if src is not None]
        self.blank = {canon: None for canon, src in sources.items() if src is None}
        self.code_column = next((c for c in RATING_CODE if c in columns), RATING_CODE[0])
        self.geo_column = next((c for c in GEO_COLUMNS if c in columns), GEO_COLUMNS[0])
        consumed = {*sources.values(), self.ua_column, self.code_column, *DROPPED}
        self.extras = sorted(c for c in columns if c not in consumed)
        self.signature = (*self.plan, self.ua_column, self.code_column, self.geo_column, *self.extras)
        self._dates: dict[str, str | None] = {}
        self._admin: dict[tuple[str | None, ...], AdminCodes] = {}
        self._ratings: dict[tuple[str | None, Any], int | None] = {}

    def record(self, row: Mapping[str, Any]) -> Record:
        facts = {canon: (v.strip() or None) if (v := row.get(src)).__class__ is str else _text(v)
                 for canon, src in self.plan}
        facts.update(self.blank)
        number = facts["numero_inspection"]
        if number is None:
            raise RowError("missing numero_inspection")
        facts["date_inspection"] = day = self._date(facts["date_inspection"])
        postcode = facts["postcode"]
        if postcode is not None and len(postcode) == 4 and postcode.isdigit():
            facts["postcode"] = "0" + postcode
        point = self._point(row.get(self.geo_column))
        facts["geo"] = None if point is None else f"{point.lat:.6f},{point.lon:.6f}"
        fingerprint = ALIMCONFIANCE.fingerprint(facts)
        rating = self._rating(facts["rating_label"], row.get(self.code_column))
        siret = facts["siret"] or ""
        code_ua = _text(row.get(self.ua_column)) if self.ua_column else None
        group = code_ua or f"{siret}|{normalise_address(facts['address'])}"
        admin = self._admin_codes(facts)
        facts["code_ua"] = code_ua
        for column in self.extras:
            value = row.get(column)
            facts[column] = (value.strip() or None) if value.__class__ is str else _text(value)
        return Record("alimconfiance", f"{number}|{siret}|{day}", facts, fingerprint, point, admin, group, rating)

    def _date(self, text: str | None) -> str:
        if text is None:
            raise RowError("missing date_inspection")
        day = self._dates.get(text, "")
        if day == "":
            day = self._dates[text] = iso_date(text)
        if day is None:
            raise RowError(f"unparseable date_inspection {text!r}")
        return day

    @staticmethod
    def _point(value: Any) -> Point | None:
        if value is None or value == "":
            return None
        try:
            point = parse_point(value.strip() if value.__class__ is str else value)
        except (ValueError, KeyError, TypeError) as exc:
            raise RowError(f"bad coordinates {value!r}: {exc}") from None
        if point is not None and point.lat == 0.0 and point.lon == 0.0:
            raise RowError("bad coordinates (0, 0)")
        return point

    def _rating(self, label: str | None, code: Any) -> int | None:
        pair = (label, code)
        rating = self._ratings.get(pair, 0)
        if rating == 0:
            rating = self._ratings[pair] = rating_of(label, _text(code))
        return rating

    def _admin_codes(self, facts: Mapping[str, str | None]) -> AdminCodes:
        codes = (facts["com_code"], facts["postcode"], facts["dep_code"], facts["reg_code"])
        admin = self._admin.get(codes)
        if admin is None:
            commune, postcode, dep, region = codes
            admin = self._admin[codes] = AdminCodes(commune, postcode, dep or departement_of(postcode), region)
        return admin


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a snapshot's records are built.

    Building ~72k records allocates ~500k containers, none of them in a cycle; each allocation burst
    would otherwise trigger full collections that rescan everything built so far (~20% of the time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _lowercase(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if all(k == k.lower() for row in rows[:1] for k in row):
        return rows
    return [{k.lower(): v for k, v in row.items()} for row in rows]


def _columns(raw: RawSnapshot, rows: list[dict[str, Any]]) -> set[str]:
    columns = {str(f.get("name", "")).lower() if isinstance(f, Mapping) else str(f).lower()
               for f in raw.meta.get("fields", ())}
    for row in rows[:50]:
        columns.update(row)
    return columns


class AlimConfianceAdapter:
    """`core.ports.Adapter` for Alim'Confiance (all three layouts, JSON or CSV exports).

    The adapter keeps the records of the last snapshot it mapped, by digest of their raw row, and does
    not map those rows again: a snapshot repeats ~99% of the previous one, so a running producer maps a
    national snapshot ~3x faster (unchanged rows are recognised by byte equality before any field is
    looked at). The records are the ones the diff state holds anyway; `remember=False` turns it off
    for one-shot uses.
    """

    dataset = "alimconfiance"

    def __init__(self, *, max_quarantined_share: float = MAX_QUARANTINED_SHARE, remember: bool = True) -> None:
        self.max_quarantined_share = max_quarantined_share
        self.remember = remember
        self._memo: dict[bytes, Record] = {}
        self._signature: tuple[Any, ...] = ()

    def to_snapshot(self, raw: RawSnapshot) -> Snapshot:
        if raw.unchanged:
            return Snapshot(self.dataset, raw.source, [], raw.complete, raw.version, problem=raw.problem,
                            unchanged=True)
        rows = _lowercase(raw.rows)
        columns = _columns(raw, rows)
        with _collector_paused():
            records, quarantined = self.map_rows(rows, raw.source, _Mapper(columns))
        log.info("mapped %d rows of layout %s: %d records, %d quarantined", len(rows), detect_layout(columns),
                 len(records), len(quarantined), extra={"dataset": self.dataset, "source": raw.source})
        complete, problem = raw.complete, raw.problem
        unreadable = sum(1 for q in quarantined if q.reason != "duplicate key")
        if complete and rows and unreadable > self.max_quarantined_share * len(rows):
            complete, problem = False, f"{unreadable} of {len(rows)} rows quarantined: too many to trust removals"
        return Snapshot(self.dataset, raw.source, records, complete, raw.version, quarantined, problem)

    def map_rows(self, rows: Iterable[Mapping[str, Any]], source: str,
                 mapper: _Mapper) -> tuple[list[Record], list[Quarantined]]:
        """Records by key (the last row of a key wins) and the rows that could not be read."""
        memo = (self._memo if mapper.signature == self._signature else {}) if self.remember else None
        seen: dict[bytes, Record] = {}
        by_key: dict[str, tuple[Record, Mapping[str, Any]]] = {}
        quarantined: list[Quarantined] = []
        for row in rows:
            try:
                record, digest = _record_of(row, mapper, memo)
            except RowError as exc:
                quarantined.append(Quarantined(source, str(exc), row))
                continue
            if memo is not None:
                seen[digest] = record
            earlier = by_key.get(record.key)
            if earlier is not None:
                quarantined.append(Quarantined(source, "duplicate key", earlier[1]))
            by_key[record.key] = (record, row)
        if self.remember:
            self._memo, self._signature = seen, mapper.signature
        return [record for record, _ in by_key.values()], quarantined


def _record_of(row: Mapping[str, Any], mapper: _Mapper,
               memo: Mapping[bytes, Record] | None) -> tuple[Record, bytes]:
    """The row's record (from `memo` when the same raw row was mapped last time) and the row's digest."""
    error = row.get(ROW_ERROR)
    if error is not None:
        raise RowError(str(error))
    raw = orjson.dumps(row, default=str)
    digest = b""
    if memo is not None:
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        record = memo.get(digest)
        if record is not None:
            return record, digest
    if b"\xef\xbf\xbd" in raw:  # U+FFFD, encoded: find the column and say which
        _check_decoded(row)
    return mapper.record(row), digest
