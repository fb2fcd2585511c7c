"""A CSV file as a source: `csv+https://host/path.csv`, `csv+http://` (loopback only), `file:///path.csv`
or a plain path.

The version is a digest of the bytes: the same file gives `unchanged=True`. Encoding (UTF-8 with or
without BOM, else cp1252/latin-1) and delimiter (`;`, `,`, tab) are sniffed and header names lowercased
(see producers.tabular). Rows with the wrong column count are kept and marked with `ROW_ERROR` for the
adapter to quarantine; a file that is not a table (HTML page, binary, no header, most rows broken)
gives `complete=False` with the reason in `problem`. fetch() never raises for source trouble.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

from core.ports import RawSnapshot
from producers.errors import SourceError, SourceUnavailable, UnreadableContent
from producers.http import HttpSource, RetryPolicy, client_timeout, open_with_retries, read_all
from producers.tabular import parse_csv
from producers.urls import mask, require_tls_or_loopback

log = logging.getLogger(__name__)

SCHEMES = ("csv+https", "csv+http", "file")


def csv_location(url: str) -> tuple[str | None, Path | None]:
    """(http url, None) or (None, path)."""
    parts = urlsplit(url)
    if parts.scheme in ("csv+https", "csv+http"):
        require_tls_or_loopback(parts, url)
        plain = parts._replace(scheme=parts.scheme.removeprefix("csv+"), fragment="")
        return plain.geturl(), None
    if parts.scheme == "file":
        return None, Path(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise ValueError(f"not a CSV source URL: {mask(url)} (use csv+https://, file:// or a path)")
    return None, Path(url.partition("#")[0])


class CsvSource(HttpSource):
    """`core.ports.Source` reading one CSV file over HTTP(S) or from disk."""

    def __init__(self, url: str, *, session: aiohttp.ClientSession | None = None, connect_timeout: float = 10.0,
                 read_timeout: float = 60.0, total_timeout: float | None = 600.0,
                 retry: RetryPolicy | None = None) -> None:
        self._http_url, self._path = csv_location(url)
        super().__init__(url, session)
        self._timeout = client_timeout(connect=connect_timeout, read=read_timeout, total=total_timeout)
        self._retry = retry or RetryPolicy()

    async def _fetch(self, last_version: str | None) -> RawSnapshot:
        try:
            data = await (self._download(self._http_url) if self._http_url else self._read_file(self._path))
        except SourceError as exc:
            log.warning("CSV source failed: %s", exc, extra={"source": self.url})
            return RawSnapshot(self.url, [], complete=False, version="", problem=str(exc))
        version = "blake2b:" + hashlib.blake2b(data, digest_size=16).hexdigest()
        if version == last_version:
            return RawSnapshot(self.url, [], complete=True, version=version, unchanged=True)
        try:
            table = await asyncio.to_thread(parse_csv, data)
        except UnreadableContent as exc:
            log.warning("CSV source unreadable: %s", exc, extra={"source": self.url})
            return RawSnapshot(self.url, [], complete=False, version=version, problem=str(exc))
        meta = {"fields": table.header, "encoding": table.encoding, "delimiter": table.delimiter,
                "bad_rows": table.bad_rows, "bytes": len(data)}
        log.info("CSV source read %d rows (%s, %r)", len(table.rows), table.encoding, table.delimiter,
                 extra={"source": self.url})
        return RawSnapshot(self.url, table.rows, complete=table.problem is None, version=version,
                           problem=table.problem, meta=meta)

    @staticmethod
    async def _read_file(path: Path | None) -> bytes:
        try:
            return await asyncio.to_thread(Path(path or "").read_bytes)
        except OSError as exc:
            raise SourceUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc

    async def _download(self, url: str) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        response = await open_with_retries(self._session, url, {}, self._timeout, self._retry)
        try:
            if response.content_type == "text/html":
                raise UnreadableContent(f"{mask(url)} answered an HTML page, not CSV")
            return await read_all(response, self.downloaded)
        finally:
            response.release()
