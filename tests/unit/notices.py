"""Dataset notices of every kind, for the renderers' tables: no rating, no place, facts in `change.current.fields`."""

from __future__ import annotations

from datetime import UTC, datetime

from core.health import FAILING, RECOVERED, STALE, Transition, source_notice
from core.model import Change
from core.storms import DatasetEvent, notice

AT = datetime(2025, 6, 30, 8, 15, tzinfo=UTC)
SINCE = datetime(2025, 6, 18, 6, 0, tzinfo=UTC)
SOURCE = "ods+https://portal.example/export_alimconfiance"
DATASET = "alimconfiance"

NOTICES: dict[str, Change] = {
    "mass_update": notice(DatasetEvent("e1", DATASET, SOURCE, "v2", ("com_name",), 6816, 9012, AT)),
    "source_stale": source_notice(SOURCE, DATASET, Transition(STALE, SINCE), AT, version="v1"),
    "source_failing": source_notice(SOURCE, DATASET, Transition(FAILING, SINCE, "HTTP 503 <Service Unavailable>"), AT),
    "source_recovered": source_notice(SOURCE, DATASET, Transition(RECOVERED, SINCE, opened=FAILING), AT),
}
