"""Sources (where rows come from) and adapters (how a dataset's rows become Records), found by URL.

    open_source("ods+https://dgal.opendatasoft.com/export_alimconfiance")   → OdsSource
    open_source("csv+https://example.org/data.csv") / "file:///x.csv" / "x.csv" → CsvSource
    adapter_for(url) → AlimConfianceAdapter for Alim'Confiance (dataset id or `#dataset=alimconfiance`),
                       else GenericAdapter keyed by `#key=field1+field2` (point from `#point=field`)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from core.ports import Adapter, Source
from core.urls import host_problem
from producers.csv_http import CsvSource, csv_location
from producers.datasets.alimconfiance import AlimConfianceAdapter
from producers.datasets.generic import GenericAdapter
from producers.opendatasoft import OdsSource, parse_ods_url
from producers.urls import fragment_options, mask

__all__ = ["AlimConfianceAdapter", "CsvSource", "GenericAdapter", "OdsSource", "adapter_for", "check_source",
           "open_source"]
ODS_SCHEMES = ("ods+https", "ods+http")


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    return scheme if len(scheme) > 1 else ""  # `C:\data.csv` is a path


def open_source(url: str, *, session: aiohttp.ClientSession | None = None, **options: Any) -> Source:
    """The source for `url`, by scheme. `options` go to the source's constructor (timeouts, retry…)."""
    check_source(url)
    if _scheme(url) in ODS_SCHEMES:
        return OdsSource(url, session=session, **options)
    return CsvSource(url, session=session, **options)


def check_source(url: str) -> None:
    """ValueError saying what is wrong with a source URL and what would be accepted; nothing is opened."""
    scheme = _scheme(url)
    if scheme in ODS_SCHEMES:
        parse_ods_url(url)
    elif scheme in ("csv+https", "csv+http", "file", ""):
        csv_location(url)
    else:
        raise ValueError(f"no source for {mask(url)}: use ods+https://PORTAL/DATASET, csv+https://…/FILE.csv, "
                         f"file:///PATH.csv or a file path{_hint(url)}")
    problem = host_problem(urlsplit(url).hostname) if scheme.endswith(("http", "https")) else None
    if problem:
        raise ValueError(f"source {mask(url)}: {problem}")


def _hint(url: str) -> str:
    scheme = _scheme(url)
    if scheme in ("http", "https"):
        return f" (for a CSV file over HTTP: csv+{mask(url)})"
    return ""


def _dataset_name(url: str) -> str:
    parts = urlsplit(url)
    last = parts.path.rstrip("/").rpartition("/")[2]
    return last.rsplit(".", 1)[0] if _scheme(url) not in ("ods+https", "ods+http") else last


def adapter_for(url: str) -> Adapter:
    """Alim'Confiance for its datasets, else a generic adapter keyed by the `#key=a+b` fragment."""
    options = fragment_options(url)
    dataset = options.get("dataset") or _dataset_name(url)
    if options.get("dataset") == "alimconfiance" or (
        _scheme(url) in ("ods+https", "ods+http") and "alimconfiance" in _dataset_name(url).lower()
    ):
        return AlimConfianceAdapter()
    key = [name.strip().lower() for name in options.get("key", "").split("+") if name.strip()]
    return GenericAdapter(dataset or "dataset", key=key, point_field=options.get("point"))
