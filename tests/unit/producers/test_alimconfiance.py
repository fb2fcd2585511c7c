"""Alim'Confiance rows of every layout → Records; unreadable rows → quarantine with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from core.geo import AdminCodes, Point
from core.ports import RawSnapshot
from core.profiles import ALIMCONFIANCE
from producers.datasets.alimconfiance import (
    CANONICAL,
    AlimConfianceAdapter,
    departement_of,
    detect_layout,
    iso_date,
    normalise_address,
)
from tests.unit.producers.support import (
    BAD_ROWS,
    LAYOUT_2026,
    LEGACY,
    OFFICIAL,
    csv_rows,
    jsonl_rows,
    raw,
    snapshot,
)

ROW: dict[str, Any] = {
    "app_libelle_etablissement": "PALAIS RIZIERES (AU PALAIS DES RIZIERES)", "siret": "38143501500015",
    "adresse_2_ua": "125 BD CARNOT", "code_postal": "78110", "libelle_commune": "LE VESINET",
    "numero_inspection": "17003771", "date_inspection": "2023-11-17T00:00:00+00:00",
    "app_libelle_activite_etablissement": "Restaurants", "synthese_eval_sanit": "Satisfaisant",
    "app_code_synthese_eval_sanit": "2", "agrement": None, "geores": {"lon": 2.114621, "lat": 48.897683},
    "filtre": "Restaurants", "ods_type_activite": "Autres", "reg_name": "Île-de-France", "reg_code": "11",
    "dep_name": "Yvelines", "dep_code": "78", "com_name": "Le Vésinet", "com_code": "78650",
}


def one(**changes: Any) -> Any:
    snap = snapshot([{**ROW, **changes}])
    assert not snap.quarantined, snap.quarantined
    return snap.records[0]


def reason(**changes: Any) -> str:
    snap = snapshot([{**ROW, **changes}])
    assert not snap.records
    return snap.quarantined[0].reason


# -- the three real layouts ----------------------------------------------------------------------------


def test_legacy_2018_export_reads_whole() -> None:
    rows = csv_rows(LEGACY)
    snap = snapshot(rows)
    assert detect_layout(rows[0]) == "legacy-2018"
    assert (len(snap.records), snap.quarantined, snap.complete) == (15_463, [], True)
    first = snap.records[0]
    assert first.key == "19-048897-1|75052913300019|2019-03-22"
    assert first.fields["name"] == "RELAIS DES BASTIDES"
    assert first.fields["address"] == "LD LE BOURG"
    assert first.point == Point(44.488403, 0.600709)
    assert first.fields["geo"] == "44.488403,0.600709"
    assert first.admin == AdminCodes(None, "47290", "47", None)
    assert (first.rating, first.group) == (1, "75052913300019|LD LE BOURG")


def test_official_2019_layout_reads_whole() -> None:
    rows = csv_rows(OFFICIAL)
    snap = snapshot(rows)
    assert detect_layout(rows[0]) == "official-2019"
    assert (len(snap.records), len(snap.quarantined)) == (131, 0)
    record = next(r for r in snap.records if r.fields["numero_inspection"] == "17003771")
    assert record.admin == AdminCodes("78650", "78110", "78", "11")
    assert record.fields["com_name"] == "Le Vésinet"
    assert record.fields["date_inspection"] == "2023-11-17"
    assert record.rating == 2


def test_2026_layout_reads_whole_and_keeps_its_extra_fields() -> None:
    rows = jsonl_rows(LAYOUT_2026)
    snap = snapshot(rows)
    assert detect_layout(rows[0]) == "bdnu-2026"
    assert (len(snap.records), len(snap.quarantined)) == (131, 0)
    record = snap.records[0]
    assert record.group == rows[0]["code_ua"] == record.fields["code_ua"]
    assert record.fields["type_suite"] == "Aucune suite"
    assert record.fields["enseigne"] == rows[0]["enseigne"]
    assert "date_extraction" not in record.fields
    assert "geores" not in record.fields
    assert "libelle_etablissement" not in record.fields  # it is `name`


def test_same_facts_fingerprint_the_same_across_layouts() -> None:
    official = {r.key: r for r in snapshot(csv_rows(OFFICIAL)).records}
    newer = {r.key: r for r in snapshot(jsonl_rows(LAYOUT_2026)).records}
    assert official.keys() == newer.keys()
    for key, record in official.items():
        assert newer[key].fingerprint == record.fingerprint, key
        assert newer[key].point == record.point
        assert {k: newer[key].fields[k] for k in CANONICAL if k != "code_ua"} == \
               {k: record.fields[k] for k in CANONICAL if k != "code_ua"}


def test_the_volatile_extraction_date_does_not_change_the_fingerprint() -> None:
    rows = jsonl_rows(LAYOUT_2026)[:3]
    later = [{**r, "date_extraction": "2026-02-02"} for r in rows]
    assert [r.fingerprint for r in snapshot(rows).records] == [r.fingerprint for r in snapshot(later).records]


def test_mixed_case_headers_are_read() -> None:
    upper = [{k.upper(): v for k, v in ROW.items()}]
    assert snapshot(upper).records[0].fingerprint == one().fingerprint


def test_layout_is_detected_from_metadata_fields_when_rows_lack_them() -> None:
    rows = [{k: v for k, v in ROW.items() if k != "geores"}]
    meta = {"fields": [{"name": "geores", "type": "geo_point_2d"}, {"name": "code_ua", "type": "text"}]}
    snap = AlimConfianceAdapter().to_snapshot(RawSnapshot("test", rows, True, "v1", meta=meta))
    assert snap.records[0].point is None
    assert snap.records[0].fields["code_ua"] is None


# -- key, group, point, admin, rating ------------------------------------------------------------------


@pytest.mark.parametrize("geores", [
    {"lon": 2.114621, "lat": 48.897683}, [48.897683, 2.114621], "48.897683,2.114621", "48.897683, 2.114621",
    " 48.8976830 , 2.1146210 ",
])
def test_every_published_point_form_gives_the_same_record(geores: object) -> None:
    record = one(geores=geores)
    assert record.point == Point(48.897683, 2.114621)
    assert record.fields["geo"] == "48.897683,2.114621"
    assert record.fingerprint == one().fingerprint


@pytest.mark.parametrize("geores", [None, "", {}, []])
def test_no_location_is_not_an_error(geores: object) -> None:
    record = one(geores=geores)
    assert (record.point, record.fields["geo"]) == (None, None)
    assert record.admin.departement == "78"


@pytest.mark.parametrize(("changes", "key", "group"), [
    ({}, "17003771|38143501500015|2023-11-17", "38143501500015|125 BD CARNOT"),
    ({"adresse_2_ua": " 125, bd.  Carnot "}, "17003771|38143501500015|2023-11-17", "38143501500015|125 BD CARNOT"),
    ({"siret": None}, "17003771||2023-11-17", "|125 BD CARNOT"),
    ({"code_ua": "UA000123"}, "17003771|38143501500015|2023-11-17", "UA000123"),
    ({"date_inspection": "2023-11-16T23:30:00+00:00"}, "17003771|38143501500015|2023-11-17",
     "38143501500015|125 BD CARNOT"),
    ({"date_inspection": "17/11/2023"}, "17003771|38143501500015|2023-11-17", "38143501500015|125 BD CARNOT"),
])
def test_key_and_group(changes: dict[str, Any], key: str, group: str) -> None:
    record = one(**changes)
    assert (record.key, record.group) == (key, group)


@pytest.mark.parametrize(("postcode", "dep_code", "departement"), [
    ("78110", "78", "78"),
    ("78110", None, "78"),
    ("20000", None, "2A"),
    ("20167", None, "2A"),
    ("20200", None, "2B"),
    ("20600", None, "2B"),
    ("97100", None, "971"),
    ("97411", None, "974"),
    ("97600", None, "976"),
    ("1000", None, "01"),
    (1000, None, "01"),
    ("ABCDE", None, None),
    (None, None, None),
    ("20000", "2A", "2A"),
])
def test_departement_published_or_derived(postcode: Any, dep_code: str | None, departement: str | None) -> None:
    record = one(code_postal=postcode, dep_code=dep_code)
    assert record.admin.departement == departement


@pytest.mark.parametrize(("postcode", "expected"), [
    ("20090", "2A"), ("20199", "2A"), ("20220", "2B"), ("20620", "2B"), ("97200", "972"), ("98000", "980"),
    ("75011", "75"), ("7501", None), ("", None), (None, None),
])
def test_departement_of(postcode: str | None, expected: str | None) -> None:
    assert departement_of(postcode) == expected


@pytest.mark.parametrize(("label", "code", "rating"), [
    ("Très satisfaisant", "1", 1), ("Satisfaisant", "2", 2), ("A améliorer", "3", 3),
    ("A corriger de manière urgente", "4", 4), ("A corriger de manière urgente", None, 4),
    ("Satisfaisant", 2, 2), ("inconnu", None, None),
])
def test_rating(label: str, code: object, rating: int | None) -> None:
    assert one(synthese_eval_sanit=label, app_code_synthese_eval_sanit=code).rating == rating


def test_json_numbers_are_read_as_the_text_the_csv_has() -> None:
    assert one(reg_code=11, siret=38143501500015).fingerprint == one().fingerprint


@pytest.mark.parametrize(("published", "text"), [
    (["Restaurants"], "Restaurants"),
    (["Libre service", "Alimentation générale"], "Libre service|Alimentation générale"),
    ([], None), ([" Restaurants ", None], "Restaurants"),
])
def test_multivalued_json_fields_read_as_the_csv_writes_them(published: list[str | None], text: str | None) -> None:
    record = one(app_libelle_activite_etablissement=published)
    assert record.fields["activity"] == text
    if text == "Restaurants":
        assert record.fingerprint == one().fingerprint


@pytest.mark.parametrize(("text", "expected"), [
    ("2019-03-22T01:00:00+01:00", "2019-03-22"), ("2019-07-09T02:00:00+02:00", "2019-07-09"),
    ("2019-07-08T22:00:00+00:00", "2019-07-09"), ("2019-07-08T22:00:00Z", "2019-07-09"),
    ("2019-03-22", "2019-03-22"), ("22/03/2019", "2019-03-22"), ("2019-02-30", None), ("hier", None),
    ("31/02/2019", None), ("", None),
])
def test_iso_date(text: str, expected: str | None) -> None:
    assert iso_date(text) == expected


def test_normalise_address() -> None:
    assert normalise_address("  4  pont-de-Neuilly, bât. B ") == "4 PONT DE NEUILLY BÂT B"
    assert normalise_address(None) == ""


# -- quarantine ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "expected"), [
    ({"numero_inspection": ""}, "missing numero_inspection"),
    ({"numero_inspection": None}, "missing numero_inspection"),
    ({"date_inspection": "  "}, "missing date_inspection"),
    ({"date_inspection": "2023-13-45"}, "unparseable date_inspection '2023-13-45'"),
    ({"geores": "95.1,2.0"}, "bad coordinates '95.1,2.0': coordinates out of range: lat=95.1 lon=2.0"),
    ({"geores": {"lon": 2.1}}, "bad coordinates {'lon': 2.1}: 'lat'"),
    ({"geores": "48.8"}, "bad coordinates '48.8': not a 'lat,lon' pair: '48.8'"),
    ({"geores": "0,0"}, "bad coordinates (0, 0)"),
    ({"geores": "nan,nan"}, "bad coordinates 'nan,nan': coordinates out of range: lat=nan lon=nan"),
    ({"libelle_commune": "Le V\ufffdsinet"}, "undecodable text (U+FFFD) in libelle_commune"),
    ({"filtre": "Restaur\ufffdnts"}, "undecodable text (U+FFFD) in filtre"),
])
def test_unreadable_rows_are_quarantined_with_a_reason(changes: dict[str, Any], expected: str) -> None:
    assert reason(**changes) == expected


def test_duplicate_keys_keep_the_last_row() -> None:
    snap = snapshot(csv_rows(BAD_ROWS / "duplicate-keys.csv"))
    assert len(snap.records) == 3
    assert [q.reason for q in snap.quarantined] == ["duplicate key"]
    kept = next(r for r in snap.records if r.key == snap.records[0].key)
    assert kept.rating == 3
    assert snap.quarantined[0].row["synthese_eval_sanit"] == "Satisfaisant"
    assert snap.complete


@pytest.mark.parametrize(("name", "good", "reasons"), [
    ("broken-coordinates.csv", 3, [
        "bad coordinates 'abc,def': could not convert string to float: 'abc'",
        "bad coordinates '95.123,2.5': coordinates out of range: lat=95.123 lon=2.5",
        "bad coordinates '48.8': not a 'lat,lon' pair: '48.8'",
        "bad coordinates '48.85,200.0': coordinates out of range: lat=48.85 lon=200.0",
        "bad coordinates (0, 0)"]),
    ("missing-keys.csv", 4, [
        "missing numero_inspection", "missing date_inspection",
        "unparseable date_inspection '2023-13-45T01:00:00+01:00'", "unparseable date_inspection 'hier'"]),
    ("replacement-char.csv", 4, [
        "undecodable text (U+FFFD) in app_libelle_etablissement", "undecodable text (U+FFFD) in libelle_commune"]),
    ("wrong-column-count.csv", 6, [
        "wrong column count: expected 20, got 19", "wrong column count: expected 20, got 21"]),
])
def test_bad_row_corpus(name: str, good: int, reasons: list[str]) -> None:
    snap = AlimConfianceAdapter(max_quarantined_share=1.0).to_snapshot(raw(csv_rows(BAD_ROWS / name)))
    assert [q.reason for q in snap.quarantined] == reasons
    assert len(snap.records) == good
    assert all(q.source == "test" for q in snap.quarantined)


def test_too_many_quarantined_rows_make_the_snapshot_incomplete() -> None:
    snap = snapshot(csv_rows(BAD_ROWS / "broken-coordinates.csv"))
    assert not snap.complete
    assert snap.problem == "5 of 8 rows quarantined: too many to trust removals"
    assert len(snap.records) == 3


def test_an_incomplete_raw_snapshot_stays_incomplete() -> None:
    snap = AlimConfianceAdapter().to_snapshot(RawSnapshot("test", [ROW], False, "v2", problem="truncated"))
    assert (snap.complete, snap.problem, len(snap.records)) == (False, "truncated", 1)


def test_an_unchanged_raw_snapshot_maps_to_an_unchanged_snapshot() -> None:
    snap = AlimConfianceAdapter().to_snapshot(RawSnapshot("test", [], True, "v1", unchanged=True))
    assert (snap.unchanged, snap.records, snap.version) == (True, [], "v1")


def test_fingerprint_is_the_profile_digest_of_the_canonical_facts() -> None:
    record = one()
    facts = {k: v for k, v in record.fields.items() if k in CANONICAL and k != "code_ua"}
    assert record.fingerprint == ALIMCONFIANCE.fingerprint(facts)
    assert record.dataset == "alimconfiance"


# -- a remembering adapter does not map unchanged rows again -------------------------------------------


def test_remember_false_maps_every_row_again() -> None:
    adapter = AlimConfianceAdapter(remember=False)
    rows = csv_rows(OFFICIAL)
    first, second = adapter.to_snapshot(raw(rows)), adapter.to_snapshot(raw(rows))
    assert first.records == second.records
    assert not any(a is b for a, b in zip(first.records, second.records, strict=True))
    assert adapter._memo == {}


def test_unchanged_rows_are_not_mapped_again() -> None:
    adapter = AlimConfianceAdapter()
    rows = csv_rows(OFFICIAL)
    first = adapter.to_snapshot(raw(rows))
    edited = [dict(r) for r in rows]
    assert edited[1]["synthese_eval_sanit"] == "Satisfaisant"
    edited[1]["synthese_eval_sanit"], edited[1]["app_code_synthese_eval_sanit"] = "A améliorer", "3"
    second = adapter.to_snapshot(raw(edited))
    reused = [a is b for a, b in zip(first.records, second.records, strict=True)]
    assert reused.count(False) == 1
    assert not reused[1]
    assert second.records[1].rating == 3
    assert second.records == AlimConfianceAdapter().to_snapshot(raw(edited)).records


def test_memory_is_the_last_snapshot_only_and_follows_the_layout() -> None:
    adapter = AlimConfianceAdapter(remember=True)
    rows = csv_rows(OFFICIAL)
    adapter.to_snapshot(raw(rows))
    adapter.to_snapshot(raw(rows[:10]))
    assert len(adapter._memo) == 10
    wider = [{**r, "code_ua": f"UA{i}"} for i, r in enumerate(rows[:10])]
    assert [r.group for r in adapter.to_snapshot(raw(wider)).records] == [f"UA{i}" for i in range(10)]


def test_unreadable_rows_are_quarantined_every_time() -> None:
    adapter = AlimConfianceAdapter(max_quarantined_share=1.0, remember=True)
    rows = csv_rows(BAD_ROWS / "replacement-char.csv")
    first, second = adapter.to_snapshot(raw(rows)), adapter.to_snapshot(raw(rows))
    assert [q.reason for q in first.quarantined] == [q.reason for q in second.quarantined]
    assert len(second.quarantined) == 2
