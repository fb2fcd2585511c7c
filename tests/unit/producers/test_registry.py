"""Finding sources and adapters by URL, URL masking, and the generic adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.geo import Point
from core.ports import RawSnapshot
from producers import AlimConfianceAdapter, CsvSource, GenericAdapter, OdsSource, adapter_for, open_source
from producers.errors import SourceUnavailable
from producers.http import RetryPolicy, status_error
from producers.opendatasoft import parse_ods_url, version_of
from producers.tabular import ROW_ERROR
from producers.urls import fragment_options, is_loopback, mask

ODS = "ods+https://dgal.opendatasoft.com/export_alimconfiance"


@pytest.mark.parametrize(("url", "kind"), [
    (ODS, OdsSource),
    ("ods+http://127.0.0.1:8080/export_alimconfiance", OdsSource),
    ("ods+http://localhost/portal/x", OdsSource),
    ("csv+https://example.org/data.csv", CsvSource),
    ("csv+http://[::1]:9000/data.csv", CsvSource),
    ("file:///srv/data/x.csv", CsvSource),
    ("data/x.csv", CsvSource),
    ("/abs/x.csv#key=id", CsvSource),
])
def test_open_source_by_scheme(url: str, kind: type) -> None:
    assert isinstance(open_source(url), kind)


@pytest.mark.parametrize(("url", "message"), [
    ("ods+http://dgal.opendatasoft.com/export_alimconfiance", "only for loopback hosts"),
    ("csv+http://example.org/x.csv", "only for loopback hosts"),
    ("ods+https://dgal.opendatasoft.com/", "no portal or dataset id"),
    ("ods+https://dgal.opendatasoft.com/x?limit=5", "unsupported query parameter"),
    ("ftp://example.org/x.csv", "no source for ftp://example.org/x.csv"),
    ("slack://xoxb-secret@channel", r"no source for slack://\*\*\*@channel"),
])
def test_open_source_refuses(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_source(url)


def test_ods_url_parts() -> None:
    base, dataset, params = parse_ods_url(
        "ods+https://data.example.org/portail/export_alimconfiance?where=dep_code%3D%2275%22&select=siret&apikey=k")
    assert base == "https://data.example.org/portail/api/explore/v2.1/catalog/datasets/export_alimconfiance"
    assert dataset == "export_alimconfiance"
    assert params == {"where": 'dep_code="75"', "select": "siret", "apikey": "k"}


@pytest.mark.parametrize("url", [
    "ods+https://dgal.opendatasoft.com/explore/dataset/export_alimconfiance/",
    "ods+https://dgal.opendatasoft.com/api/explore/v2.1/catalog/datasets/export_alimconfiance",
    "ods+https://dgal.opendatasoft.com/export_alimconfiance#dataset=alimconfiance",
])
def test_pasted_portal_urls(url: str) -> None:
    base, dataset, _ = parse_ods_url(url)
    assert base == "https://dgal.opendatasoft.com/api/explore/v2.1/catalog/datasets/export_alimconfiance"
    assert dataset == "export_alimconfiance"


def test_version_from_metadata() -> None:
    meta = {"metas": {"default": {"modified": "m", "data_processed": "d", "records_count": 3}}}
    assert version_of(meta) == "d|3"
    assert version_of({"metas": {"default": {"modified": "m", "records_count": 3}}}) == "m|3"


@pytest.mark.parametrize(("url", "masked"), [
    (f"{ODS}?apikey=abc&where=x", f"{ODS}?apikey=***&where=x"),
    ("csv+https://user:pw@example.org/x.csv?token=t", "csv+https://user:***@example.org/x.csv?token=***"),
    (ODS, ODS),
])
def test_mask(url: str, masked: str) -> None:
    assert mask(url) == masked


def test_source_url_is_masked() -> None:
    source = open_source(f"{ODS}?apikey=abc")
    assert source.url == f"{ODS}?apikey=***"


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("example.org", False), ("10.0.0.1", False), (None, False),
])
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_fragment_keeps_plus_signs() -> None:
    assert fragment_options("x.csv#dataset=prix&key=id+date&point=geom") == {
        "dataset": "prix", "key": "id+date", "point": "geom"}


@pytest.mark.parametrize("url", [ODS, "ods+https://other.portal.fr/x/export_alimconfiance_2026",
                                 "file:///tmp/inspections.csv#dataset=alimconfiance", "data.csv#dataset=alimconfiance"])
def test_alimconfiance_adapter(url: str) -> None:
    assert isinstance(adapter_for(url), AlimConfianceAdapter)


def test_generic_adapter_from_the_fragment() -> None:
    adapter = adapter_for("ods+https://data.economie.gouv.fr/prix-carburants#key=id+carburant&point=geom")
    assert isinstance(adapter, GenericAdapter)
    assert (adapter.dataset, adapter.key_fields, adapter.point_field) == ("prix-carburants", ("id", "carburant"),
                                                                           "geom")
    assert adapter_for("file:///tmp/rappels.csv").dataset == "rappels"


def _generic(rows: list[dict[str, object]], *, key: tuple[str, ...] = ("id",), **meta: object) -> object:
    return GenericAdapter("d", key=key).to_snapshot(RawSnapshot("s", rows, True, "v", meta=meta))


def test_generic_records_key_point_and_quarantine() -> None:
    rows: list[dict[str, object]] = [
        {"id": "1", "geo_point_2d": {"lon": 2.35, "lat": 48.85}, "prix": 1.8},
        {"id": "", "geo_point_2d": None},
        {"id": "3", "geo_point_2d": "95,2"},
        {"id": "4", ROW_ERROR: "wrong column count: expected 3, got 2"},
        {"id": "1", "geo_point_2d": None, "prix": 1.9},
    ]
    snap = GenericAdapter("d", key=("id",)).to_snapshot(RawSnapshot("s", rows, True, "v"))
    assert [(r.key, r.point, r.fields.get("prix")) for r in snap.records] == [("1", None, 1.9)]
    assert [q.reason for q in snap.quarantined] == [
        "missing key field id", "bad coordinates '95,2': coordinates out of range: lat=95.0 lon=2.0",
        "wrong column count: expected 3, got 2", "duplicate key"]
    assert snap.quarantined[-1].row["prix"] == 1.8


def test_generic_point_from_declared_geo_field_and_content_key() -> None:
    rows: list[dict[str, object]] = [{"nom": "A", "position": "48.85, 2.35"}]
    meta = {"fields": [{"name": "position", "type": "geo_point_2d"}]}
    snap = GenericAdapter("d").to_snapshot(RawSnapshot("s", rows, True, "v", meta=meta))
    record = snap.records[0]
    assert record.point == Point(48.85, 2.35)
    assert len(record.key) == 32
    unchanged = GenericAdapter("d").to_snapshot(RawSnapshot("s", [], True, "v", unchanged=True))
    assert unchanged.unchanged


@pytest.mark.parametrize(("status", "headers", "body", "retriable", "wait"), [
    (429, {}, b'{"errorcode": 10002, "reset_time": "2026-01-12T08:00:30+00:00", "call_limit": 1000}', True, 30.0),
    (429, {"Retry-After": "7"}, b"", True, 7.0),
    (503, {"Retry-After": "Mon, 12 Jan 2026 08:01:00 GMT"}, b"", True, 60.0),
    (502, {}, b"<html>bad gateway</html>", True, None),
    (401, {}, b'{"message": "Missing API key"}', False, None),
])
def test_status_errors(status: int, headers: dict[str, str], body: bytes, retriable: bool,
                       wait: float | None) -> None:
    error = status_error(status, "https://x/y?apikey=k", headers, body, datetime(2026, 1, 12, 8, tzinfo=UTC))
    assert isinstance(error, SourceUnavailable)
    assert (error.retriable, error.retry_after, error.status) == (retriable, wait, status)
    assert "apikey=***" in str(error)


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff=1.0, max_wait=5.0)
    error = SourceUnavailable("x", retriable=True)
    delays = [policy.delay(attempt, error) for attempt in (1, 2, 3, 4, 5)]
    assert 0.5 <= delays[0] <= 1.0 <= delays[1] <= 2.0 <= delays[2] <= 4.0
    assert all(2.5 <= d <= 5.0 for d in delays[3:])
    assert policy.delay(1, SourceUnavailable("x", retriable=True, retry_after=-3)) == 0.0


def test_paths_are_plain_paths(tmp_path: Path) -> None:
    assert isinstance(open_source(str(tmp_path / "x.csv")), CsvSource)
