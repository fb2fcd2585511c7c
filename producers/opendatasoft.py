"""An Opendatasoft dataset as a source: `ods+https://PORTAL[/prefix]/DATASET_ID[?where=…&select=…&apikey=…]`.

Explore API v2.1. Each fetch first asks the dataset metadata (cheap): the version is
`data_processed` (else `modified`) plus `records_count`; when it equals the last version nothing is
downloaded. Otherwise the whole dataset comes from `/exports/jsonl` (streamed, parsed line by line),
else `/exports/csv`, else `/records` pages of 100 ordered on a unique field (keyset paging past the
10,000 offset cap) when an export answers 404/400.

fetch() never raises for source trouble: failures, truncated bodies and fewer rows than the metadata
announces give `complete=False` with a one-line `problem` (rows that did arrive may be returned). Keep
`version` as the last version only from complete snapshots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import orjson

from core.ports import RawSnapshot
from producers.errors import EndpointMissing, SourceError, TruncatedDownload, UnreadableContent
from producers.http import HttpSource, RetryPolicy, body_json, client_timeout, iter_chunks, open_with_retries, read_all
from producers.tabular import parse_csv
from producers.urls import mask, require_tls_or_loopback

log = logging.getLogger(__name__)

SCHEMES = ("ods+https", "ods+http")
API = "/api/explore/v2.1/catalog/datasets/"
PASSTHROUGH = ("where", "select", "refine", "exclude", "lang", "timezone")
FILTERS = ("where", "refine", "exclude")
PAGE = 100
OFFSET_CAP = 10_000
UNIQUE_FIELDS = ("numero_inspection", "recordid", "record_id", "id")


def parse_ods_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(API base of the dataset, dataset id, query params to pass) from an `ods+https://` URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"not an Opendatasoft URL: {mask(url)} (expected ods+https://PORTAL/DATASET_ID)")
    require_tls_or_loopback(parts, url)
    prefix, _, dataset_id = parts.path.rstrip("/").rpartition("/")
    for pasted in (API.rstrip("/"), "/explore/dataset"):  # a portal page or API URL pasted as is
        prefix = prefix.partition(pasted)[0] if prefix.endswith(pasted) else prefix
    if not parts.hostname or not dataset_id:
        raise ValueError(f"no portal or dataset id in {mask(url)} (expected ods+https://PORTAL/DATASET_ID)")
    params = dict(parse_qsl(parts.query, keep_blank_values=False))
    unknown = sorted(set(params) - {*PASSTHROUGH, "apikey"})
    if unknown:
        raise ValueError(f"unsupported query parameter(s) {', '.join(unknown)} in {mask(url)}; "
                         f"use {', '.join(PASSTHROUGH)} or apikey")
    scheme = parts.scheme.removeprefix("ods+")
    return f"{scheme}://{parts.netloc}{prefix}{API}{dataset_id}", dataset_id, params


def version_of(meta: Mapping[str, Any]) -> str:
    default = _metas(meta)
    stamp = default.get("data_processed") or default.get("modified") or ""
    return f"{stamp}|{default.get('records_count', '')}"


def _metas(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    default = (meta.get("metas") or {}).get("default") if isinstance(meta, Mapping) else None
    if not isinstance(default, Mapping):
        raise UnreadableContent("dataset metadata without metas.default")
    return default


def _literal(value: Any) -> str:
    """An ODSQL literal: numbers bare, everything else a double-quoted string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Download:
    """Rows gathered so far, and what went wrong, if anything."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.bad_lines = 0
        self.how = ""


class OdsSource(HttpSource):
    """`core.ports.Source` for one dataset of an Opendatasoft portal (Explore API v2.1)."""

    def __init__(self, url: str, *, session: aiohttp.ClientSession | None = None, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0, metadata_timeout: float = 30.0, download_timeout: float | None = 900.0,
                 retry: RetryPolicy | None = None, page_key: str | None = None) -> None:
        self._base, self.dataset_id, params = parse_ods_url(url)
        super().__init__(url, session)
        self._params = {k: v for k, v in params.items() if k in PASSTHROUGH}
        # the key travels in a header, not in request URLs that proxies and portals log
        self._auth = {"Authorization": f"Apikey {params['apikey']}"} if params.get("apikey") else {}
        self._meta_timeout = client_timeout(connect=connect_timeout, read=metadata_timeout, total=metadata_timeout)
        self._timeout = client_timeout(connect=connect_timeout, read=read_timeout, total=download_timeout)
        self._retry = retry or RetryPolicy()
        self._page_key = page_key

    async def _fetch(self, last_version: str | None) -> RawSnapshot:
        try:
            meta = await self._json(self._base, {}, self._meta_timeout)
            version = version_of(meta)
        except SourceError as exc:
            log.warning("dataset metadata unavailable: %s", exc, extra={"source": self.url})
            return RawSnapshot(self.url, [], complete=False, version="", problem=f"metadata: {exc}")
        if version == last_version:
            log.info("dataset unchanged (%s)", version, extra={"source": self.url})
            return RawSnapshot(self.url, [], complete=True, version=version, unchanged=True, meta=self._meta(meta))
        download = _Download()
        problem = await self._download(meta, download)
        if problem is None:
            problem = await self._check_count(meta, download)
        if problem:
            log.warning("incomplete download: %s", problem, extra={"source": self.url})
        return RawSnapshot(self.url, download.rows, complete=problem is None, version=version, problem=problem,
                           meta={**self._meta(meta), "format": download.how})

    def _meta(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        default = _metas(meta)
        fields = [{"name": f.get("name"), "type": f.get("type")} for f in meta.get("fields") or ()
                  if isinstance(f, Mapping)]
        return {"dataset_id": self.dataset_id, "title": default.get("title"), "modified": default.get("modified"),
                "data_processed": default.get("data_processed"), "records_count": default.get("records_count"),
                "fields": fields}

    async def _download(self, meta: Mapping[str, Any], download: _Download) -> str | None:
        """Fill `download` by the first way that exists; the problem, or None when it all arrived."""
        try:
            for how, read in (("jsonl", self._jsonl), ("csv", self._csv)):
                try:
                    download.how = how
                    await read(download)
                except EndpointMissing as exc:
                    log.info("export %s unavailable (%s); falling back", how, exc, extra={"source": self.url})
                    continue
                return self._line_problem(download)
            download.how = "records"
            await self._records(meta, download)
        except SourceError as exc:
            return f"{download.how} download: {exc}"
        return None

    @staticmethod
    def _line_problem(download: _Download) -> str | None:
        return f"{download.bad_lines} unreadable line(s) in the export" if download.bad_lines else None

    async def _check_count(self, meta: Mapping[str, Any], download: _Download) -> str | None:
        try:
            expected = await self._expected_count(meta)
        except SourceError as exc:
            return f"cannot check the row count: {exc}"
        if expected is not None and len(download.rows) < expected:
            return f"got {len(download.rows)} rows, the portal announces {expected}"
        return None

    async def _expected_count(self, meta: Mapping[str, Any]) -> int | None:
        if not any(k in self._params for k in FILTERS):
            count = _metas(meta).get("records_count")
            return int(count) if isinstance(count, int | str) and str(count).isdigit() else None
        params = {k: v for k, v in self._params.items() if k != "select"} | {"limit": "0"}
        total = (await self._json(f"{self._base}/records", params, self._meta_timeout)).get("total_count")
        return total if isinstance(total, int) else None

    async def _open(self, url: str, params: Mapping[str, str],
                    limits: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await open_with_retries(self._session, url, params, limits, self._retry, headers=self._auth)

    async def _json(self, url: str, params: Mapping[str, str], limits: aiohttp.ClientTimeout) -> Any:
        response = await self._open(url, params, limits)
        try:
            doc = body_json(await read_all(response), f"answer of {mask(url)}")
        finally:
            response.release()
        if not isinstance(doc, dict):
            raise UnreadableContent(f"answer of {mask(url)} is not a JSON object")
        return doc

    async def _jsonl(self, download: _Download) -> None:
        response = await self._open(f"{self._base}/exports/jsonl", self._params, self._timeout)
        tail = b""
        try:
            async for chunk in iter_chunks(response, self.downloaded):
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                self._parse_lines(lines, download)
        finally:
            response.release()
        if tail.strip():
            try:
                download.rows.append(orjson.loads(tail))
            except orjson.JSONDecodeError as exc:
                raise TruncatedDownload(f"last line cut after {len(download.rows)} rows") from exc

    @staticmethod
    def _parse_lines(lines: list[bytes], download: _Download) -> None:
        for line in lines:
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                download.bad_lines += 1
                continue
            if isinstance(row, dict):
                download.rows.append(row)
            else:
                download.bad_lines += 1

    async def _csv(self, download: _Download) -> None:
        response = await self._open(f"{self._base}/exports/csv", {**self._params, "delimiter": ";"}, self._timeout)
        try:
            data = await read_all(response, self.downloaded)
        finally:
            response.release()
        table = await asyncio.to_thread(parse_csv, data)
        download.rows.extend(table.rows)
        download.bad_lines += table.bad_rows
        if data and not data.endswith(b"\n"):
            raise TruncatedDownload(f"CSV export ends mid-line after {len(table.rows)} rows")

    async def _records(self, meta: Mapping[str, Any], download: _Download) -> None:
        """Pages of 100 ordered on a unique field; past the offset cap, filter after the last value."""
        key = self._page_key or self._unique_field(meta)
        offset, after = 0, None
        while True:
            if offset + PAGE >= OFFSET_CAP:
                offset, after = 0, self._last_value(download, key, after)
            params = {**self._params, "limit": str(PAGE), "offset": str(offset), "order_by": key}
            if after is not None:
                clause = f"{key} > {_literal(after)}"
                params["where"] = f"({self._params['where']}) and {clause}" if "where" in self._params else clause
            page = (await self._json(f"{self._base}/records", params, self._timeout)).get("results")
            if not isinstance(page, list):
                raise UnreadableContent("records answer without a results list")
            download.rows.extend(r for r in page if isinstance(r, dict))
            if len(page) < PAGE:
                return
            offset += PAGE

    @staticmethod
    def _last_value(download: _Download, key: str, previous: Any) -> Any:
        value = download.rows[-1].get(key)
        if value is None or value == previous:
            raise UnreadableContent(f"cannot page past {OFFSET_CAP} rows: {key} is empty or not unique")
        return value

    @staticmethod
    def _unique_field(meta: Mapping[str, Any]) -> str:
        fields = [f for f in meta.get("fields") or () if isinstance(f, Mapping) and f.get("name")]
        names = [str(f["name"]) for f in fields]
        annotated = [str(f["name"]) for f in fields if "id" in (f.get("annotations") or {})]
        known = [name for name in UNIQUE_FIELDS if name in names]
        chosen = (annotated or known or names or [""])[0]
        if not chosen:
            raise UnreadableContent("no field to order /records pages on")
        return chosen
