"""Any other dataset: rows become Records keyed by the fields named in the URL (`#key=field1+field2`).

Without a key the record key is a digest of the whole row, so an edited row shows as one removal
plus one creation. The point comes from `#point=field`, else from the first geo field the portal
declares (type geo_point_2d) or a usual name (geo_point_2d, geores, geolocalisation, coordinates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from core.geo import Point, parse_point
from core.model import Record, stable_hash
from core.ports import Quarantined, RawSnapshot, Snapshot
from core.profiles import GENERIC
from producers.tabular import ROW_ERROR, ROW_EXTRA

GEO_NAMES = ("geo_point_2d", "geores", "geo_point", "geolocalisation", "geolocation", "coordinates", "coordonnees")
_INTERNAL = frozenset({ROW_ERROR, ROW_EXTRA})


def _geo_field(raw: RawSnapshot, rows: Sequence[Mapping[str, Any]]) -> str | None:
    declared = [f.get("name") for f in raw.meta.get("fields", ()) if isinstance(f, Mapping)
                and f.get("type") == "geo_point_2d"]
    if declared:
        return str(declared[0])
    columns = set(rows[0]) if rows else set()
    return next((name for name in GEO_NAMES if name in columns), None)


class GenericAdapter:
    """`core.ports.Adapter` for datasets Vigie has no profile for."""

    def __init__(self, dataset: str, *, key: Sequence[str] = (), point_field: str | None = None) -> None:
        self.dataset = dataset
        self.key_fields = tuple(key)
        self.point_field = point_field

    def to_snapshot(self, raw: RawSnapshot) -> Snapshot:
        if raw.unchanged:
            return Snapshot(self.dataset, raw.source, [], raw.complete, raw.version, problem=raw.problem,
                            unchanged=True)
        geo = self.point_field or _geo_field(raw, raw.rows)
        records: dict[str, tuple[Record, Mapping[str, Any]]] = {}
        quarantined: list[Quarantined] = []
        for row in raw.rows:
            try:
                record = self._record(row, geo)
            except ValueError as exc:
                quarantined.append(Quarantined(raw.source, str(exc), row))
                continue
            if record.key in records:
                quarantined.append(Quarantined(raw.source, "duplicate key", records[record.key][1]))
            records[record.key] = (record, row)
        return Snapshot(self.dataset, raw.source, [r for r, _ in records.values()], raw.complete, raw.version,
                        quarantined, raw.problem)

    def _record(self, row: Mapping[str, Any], geo: str | None) -> Record:
        if ROW_ERROR in row:
            raise ValueError(str(row[ROW_ERROR]))
        fields = {k: v for k, v in row.items() if k not in _INTERNAL}
        point = self._point(fields.get(geo) if geo else None)
        return Record(self.dataset, self._key(fields), fields, GENERIC.fingerprint(fields), point)

    def _key(self, fields: Mapping[str, Any]) -> str:
        if not self.key_fields:
            return stable_hash(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str).decode())
        parts = []
        for name in self.key_fields:
            value = fields.get(name)
            if value is None or str(value).strip() == "":
                raise ValueError(f"missing key field {name}")
            parts.append(str(value).strip())
        return "|".join(parts)

    @staticmethod
    def _point(value: Any) -> Point | None:
        try:
            return parse_point(value.strip() if isinstance(value, str) else value)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad coordinates {value!r}: {exc}") from None
