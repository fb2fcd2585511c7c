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
from producers.csv_http import CsvSource
from producers.datasets.alimconfiance import AlimConfianceAdapter
from producers.datasets.generic import GenericAdapter
from producers.opendatasoft import OdsSource
from producers.urls import fragment_options, mask

__all__ = ["AlimConfianceAdapter", "CsvSource", "GenericAdapter", "OdsSource", "adapter_for", "open_source"]


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    return scheme if len(scheme) > 1 else ""  # `C:\data.csv` is a path


def open_source(url: str, *, session: aiohttp.ClientSession | None = None, **options: Any) -> Source:
    """The source for `url`, by scheme. `options` go to the source's constructor (timeouts, retry…)."""
    scheme = _scheme(url)
    if scheme in ("ods+https", "ods+http"):
        return OdsSource(url, session=session, **options)
    if scheme in ("csv+https", "csv+http", "file", ""):
        return CsvSource(url, session=session, **options)
    raise ValueError(f"no source for {mask(url)}: use ods+https://, csv+https://, file:// or a file path")


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
