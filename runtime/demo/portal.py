"""A local stand-in for an Opendatasoft portal (Explore API v2.1), for the demo and the tests.

It speaks enough of the real API for OdsSource: dataset metadata (`metas.default.modified`,
`data_processed`, `records_count`, `title`, the `fields` list), `/exports/jsonl`, `/exports/csv`
(BOM, `;`, geo points as "lat, lon") and `/records` (limit ≤ 100, offset + limit ≤ 10,000, `order_by`,
a minimal `where`: `field > "value"` clauses joined by `and`), with ODS-style error bodies.
It is driven from Python, not HTTP: `publish()`, counters, and fault injection (`fail_next`,
`truncate_next`, `disable_export`). Rows are stored in ODS v2.1 JSON form (geo as {"lon", "lat"}).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

log = logging.getLogger(__name__)

API = "/api/explore/v2.1/catalog/datasets"
MAX_LIMIT = 100
MAX_WINDOW = 10_000
CHUNK = 16_384
_CLAUSE = re.compile(r"""(\w+)\s*(>=|<=|!=|>|<|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?\d+(?:\.\d+)?)""")
_FILLER = re.compile(r"(?i)\s|\(|\)|\band\b")
_QUOTA_ERROR = "Too many requests on the domain. Please contact the domain administrator."


@dataclass
class Dataset:
    dataset_id: str
    rows: list[dict[str, Any]]
    modified: str
    title: str
    fields: list[dict[str, Any]]
    records_count: int


@dataclass
class Fault:
    status: int
    times: int
    endpoint: str | None
    reset_time: str | None = None
    retry_after: float | None = None


@dataclass
class Truncation:
    endpoint: str | None
    at: float
    close: bool
    declare_length: bool


@dataclass
class Counters:
    metadata_hits: int = 0
    downloads: int = 0
    record_pages: int = 0
    requests: list[tuple[str, int]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


def _field_type(value: Any) -> str:
    if isinstance(value, dict) and {"lat", "lon"} <= value.keys():
        return "geo_point_2d"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    return "text"


def infer_fields(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The metadata `fields` list: names in first-seen order, types from the first non-null value."""
    types: dict[str, str | None] = {}
    for row in rows:
        for name, value in row.items():
            if types.get(name) is None:
                types[name] = None if value is None else _field_type(value)
    return [{"name": n, "label": n, "type": t or "text", "annotations": {}, "description": None}
            for n, t in types.items()]


def _iso(moment: datetime | str) -> str:
    return moment if isinstance(moment, str) else moment.astimezone(UTC).isoformat()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and {"lat", "lon"} <= value.keys():
        return f"{value['lat']}, {value['lon']}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"message": message, "error_code": code}, status=status)


def _literal(token: str) -> str | float:
    if token[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return float(token)


def parse_where(where: str) -> list[tuple[str, str, str | float]]:
    """The `field op literal` clauses of a minimal ODSQL where; ValueError for anything else."""
    clauses = [(m[1], m[2], _literal(m[3])) for m in _CLAUSE.finditer(where)]
    if not clauses or _FILLER.sub("", _CLAUSE.sub("", where)):
        raise ValueError(f"unsupported where clause: {where}")
    return clauses


def _matches(row: Mapping[str, Any], clauses: list[tuple[str, str, str | float]]) -> bool:
    for name, op, literal in clauses:
        value = row.get(name)
        if value is None:
            return False
        left: Any = float(value) if isinstance(literal, float) else str(value)
        if not {"=": left == literal, "!=": left != literal, ">": left > literal, ">=": left >= literal,
                "<": left < literal, "<=": left <= literal}[op]:
            return False
    return True


def _mid_line(body: bytes, at: float) -> int:
    """A cut position inside a line (never right after a newline), near fraction `at` of the body."""
    position = max(1, min(len(body) - 1, int(len(body) * at)))
    while position > 1 and body[position - 1:position] == b"\n":
        position -= 1
    return position


def _sort_key(name: str) -> Callable[[Mapping[str, Any]], str]:
    def key(row: Mapping[str, Any]) -> str:
        value = row.get(name)
        return "" if value is None else str(value)

    return key


def _ordered(rows: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    """Sorted like ODS `order_by=a asc, b desc` (text order; null first)."""
    for term in reversed([t.strip() for t in (order_by or "").split(",") if t.strip()]):
        name, _, direction = term.partition(" ")
        rows = sorted(rows, key=_sort_key(name), reverse=direction.strip().lower() == "desc")
    return rows


def _selected(rows: list[dict[str, Any]], select: str | None) -> list[dict[str, Any]]:
    names = [n.strip() for n in (select or "").split(",") if n.strip() and n.strip() != "*"]
    return [{n: r.get(n) for n in names} for r in rows] if names else rows


class FakePortal:
    """An aiohttp Opendatasoft look-alike on 127.0.0.1. `await start()` returns its base URL."""

    def __init__(self, *, apikey: str | None = None) -> None:
        self.apikey = apikey
        self.datasets: dict[str, Dataset] = {}
        self.counters = Counters()
        self._faults: list[Fault] = []
        self._truncations: list[Truncation] = []
        self._disabled: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- control API (Python) --------------------------------------------------------------------------

    def publish(self, dataset_id: str, rows: Iterable[Mapping[str, Any]], *, modified: datetime | str,
                title: str | None = None, fields: list[dict[str, Any]] | None = None,
                records_count: int | None = None) -> None:
        """Replace a dataset's rows; `records_count` can be forced to announce more rows than served."""
        stored = [dict(r) for r in rows]
        self.datasets[dataset_id] = Dataset(dataset_id, stored, _iso(modified), title or dataset_id,
                                            fields or infer_fields(stored),
                                            len(stored) if records_count is None else records_count)

    def fail_next(self, status: int, times: int = 1, *, reset_time: datetime | str | None = None,
                  retry_after: float | None = None, endpoint: str | None = None) -> None:
        """Answer the next `times` requests (to `endpoint`: metadata, jsonl, csv, records; None = any)
        with `status`. A 429 carries the ODS quota body with `reset_time`."""
        reset = None if reset_time is None else _iso(reset_time)
        self._faults.append(Fault(status, times, endpoint, reset, retry_after))

    def truncate_next(self, *, endpoint: str | None = None, at: float = 0.5, close: bool = True,
                      declare_length: bool = False) -> None:
        """Cut the next export body mid-line at fraction `at`. `close` drops the connection there
        (chunked, or short of a declared Content-Length); otherwise the response ends cleanly, cut."""
        self._truncations.append(Truncation(endpoint, at, close, declare_length))

    def disable_export(self, *formats: str, status: int = 404) -> None:
        """Make `/exports/{format}` answer `status` (404 or 400), as on portals without that export."""
        self._disabled.update(dict.fromkeys(formats, status))

    @property
    def metadata_hits(self) -> int:
        return self.counters.metadata_hits

    @property
    def downloads(self) -> int:
        return self.counters.downloads

    def url_for(self, dataset_id: str, query: str = "") -> str:
        """The `ods+http://` URL OdsSource reads this portal's dataset from."""
        base = self.base_url.replace("http://", "ods+http://", 1)
        return f"{base}/{dataset_id}" + (f"?{query}" if query else "")

    # -- server ----------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get(API + "/{dataset_id}", self._metadata)
        app.router.add_get(API + "/{dataset_id}/exports/{format}", self._export)
        app.router.add_get(API + "/{dataset_id}/records", self._records)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site.port}"
        log.info("fake Opendatasoft portal listening on %s", self.base_url)
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakePortal:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- handlers --------------------------------------------------------------------------------------

    def _gate(self, request: web.Request, endpoint: str) -> web.StreamResponse | Dataset:
        """Authentication, injected faults, dataset lookup: the error to answer, or the dataset."""
        self.counters.queries.append(request.query_string)
        self.counters.authorizations.append(request.headers.get("Authorization"))
        if self.apikey is not None and request.query.get("apikey") != self.apikey \
                and request.headers.get("Authorization") != f"Apikey {self.apikey}":
            return _error(401, "Missing or invalid API key", "InvalidAPIKey")
        fault = next((f for f in self._faults if f.endpoint in (None, endpoint)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            return self._fault_response(fault)
        dataset = self.datasets.get(request.match_info["dataset_id"])
        if dataset is None:
            return _error(404, f"Unknown dataset: {request.match_info['dataset_id']}", "DatasetNotFound")
        return dataset

    @staticmethod
    def _fault_response(fault: Fault) -> web.Response:
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.status == 429:
            body = {"errorcode": 10002, "reset_time": fault.reset_time or _iso(datetime.now(UTC)),
                    "limit_time_unit": "minute", "call_limit": 1000, "error": _QUOTA_ERROR}
            return web.json_response(body, status=429, headers=headers)
        return web.Response(status=fault.status, text=f"{fault.status} injected fault", headers=headers)

    def _log(self, endpoint: str, response: web.StreamResponse) -> web.StreamResponse:
        self.counters.requests.append((endpoint, response.status))
        return response

    async def _metadata(self, request: web.Request) -> web.StreamResponse:
        self.counters.metadata_hits += 1
        gate = self._gate(request, "metadata")
        if not isinstance(gate, Dataset):
            return self._log("metadata", gate)
        metas = {"default": {"title": gate.title, "modified": gate.modified, "data_processed": gate.modified,
                             "metadata_processed": gate.modified, "records_count": gate.records_count,
                             "modified_updates_on_data_change": True}}
        body = {"dataset_id": gate.dataset_id, "dataset_uid": f"da_{zlib.crc32(gate.dataset_id.encode()):08x}",
                "has_records": bool(gate.rows), "data_visible": True, "features": ["analyze", "geo"],
                "attachments": [], "metas": metas, "fields": gate.fields}
        return self._log("metadata", web.json_response(body))

    async def _export(self, request: web.Request) -> web.StreamResponse:
        fmt = request.match_info["format"]
        gate = self._gate(request, fmt)
        if not isinstance(gate, Dataset):
            return self._log(fmt, gate)
        if fmt in self._disabled:
            status = self._disabled[fmt]
            return self._log(fmt, _error(status, f"Export format {fmt!r} is not available", "InvalidFormat"))
        if fmt not in ("jsonl", "csv"):
            return self._log(fmt, _error(400, f"Unsupported export format {fmt!r}", "InvalidRESTParameterError"))
        try:
            rows = self._query(gate.rows, request.query)
        except ValueError as exc:
            return self._log(fmt, _error(400, str(exc), "ODSQLError"))
        if fmt == "jsonl":
            body, content_type = b"".join(orjson.dumps(r) + b"\n" for r in rows), "application/jsonl"
        else:
            body, content_type = self._csv_body(rows, gate.fields, request.query), "text/csv; charset=utf-8"
        self.counters.downloads += 1
        response = await self._stream(request, body, content_type, fmt)
        return self._log(fmt, response)

    @staticmethod
    def _query(rows: list[dict[str, Any]], query: Mapping[str, str]) -> list[dict[str, Any]]:
        if query.get("where"):
            clauses = parse_where(query["where"])
            rows = [r for r in rows if _matches(r, clauses)]
        return _selected(_ordered(rows, query.get("order_by")), query.get("select"))

    @staticmethod
    def _csv_body(rows: list[dict[str, Any]], fields: list[dict[str, Any]], query: Mapping[str, str]) -> bytes:
        names = [str(f["name"]) for f in fields]
        if rows and query.get("select"):
            names = list(rows[0])
        out = io.StringIO()
        writer = csv.writer(out, delimiter=query.get("delimiter", ";"), lineterminator="\r\n")
        writer.writerow(names)
        writer.writerows([_csv_value(row.get(n)) for n in names] for row in rows)
        bom = "\ufeff" if query.get("with_bom", "true").lower() != "false" else ""
        return (bom + out.getvalue()).encode("utf-8")

    def _take_truncation(self, endpoint: str) -> Truncation | None:
        cut = next((t for t in self._truncations if t.endpoint in (None, endpoint)), None)
        if cut is not None:
            self._truncations.remove(cut)
        return cut

    async def _stream(self, request: web.Request, body: bytes, content_type: str,
                      endpoint: str) -> web.StreamResponse:
        cut = self._take_truncation(endpoint)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        if cut is not None and cut.declare_length:
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        end = len(body) if cut is None else _mid_line(body, cut.at)
        for start in range(0, end, CHUNK):
            await response.write(body[start:min(start + CHUNK, end)])
        if cut is not None and cut.close:
            log.info("fake portal drops the connection after %d of %d bytes", end, len(body))
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    async def _records(self, request: web.Request) -> web.StreamResponse:
        self.counters.record_pages += 1
        gate = self._gate(request, "records")
        if not isinstance(gate, Dataset):
            return self._log("records", gate)
        try:
            limit, offset = int(request.query.get("limit", "10")), int(request.query.get("offset", "0"))
        except ValueError:
            return self._log("records", _error(400, "limit and offset must be integers", "InvalidRESTParameterError"))
        limit = MAX_LIMIT if limit == -1 else limit
        if not 0 <= limit <= MAX_LIMIT:
            message = f"Invalid value for limit API parameter: {limit} was found but -1 <= limit <= 100 is expected."
            return self._log("records", _error(400, message, "InvalidRESTParameterError"))
        if offset < 0 or offset + limit > MAX_WINDOW:
            message = (f"Invalid value for offset API parameter: offset ({offset}) + limit ({limit}) must be "
                       f"lower than or equal to {MAX_WINDOW}. Use the exports endpoint for more results.")
            return self._log("records", _error(400, message, "InvalidRESTParameterError"))
        try:
            rows = self._query(gate.rows, request.query)
        except ValueError as exc:
            return self._log("records", _error(400, str(exc), "ODSQLError"))
        body = {"total_count": len(rows), "results": rows[offset:offset + limit]}
        return self._log("records", web.json_response(body, dumps=lambda d: orjson.dumps(d).decode()))
