"""OdsSource against the local Opendatasoft portal serving real Alim'Confiance rows (no Kafka or Redis)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from core.diff import diff
from core.ports import RawSnapshot
from core.profiles import ALIMCONFIANCE
from producers import adapter_for, open_source
from producers.http import RetryPolicy
from producers.opendatasoft import OdsSource
from runtime.demo.portal import FakePortal
from runtime.demo.snapshots import DATASET_ID, DemoStory, build_snapshots

NOW = datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


@functools.cache
def story() -> DemoStory:
    return build_snapshots()


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def portal() -> AsyncIterator[FakePortal]:
    async with FakePortal() as fake:
        fake.publish(DATASET_ID, story().first.rows, modified=story().first.modified, title="Alim'Confiance")
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


async def fetch(portal: FakePortal, sleeps: Sleeps, last: str | None = None, *, query: str = "",
                **options: Any) -> RawSnapshot:
    policy = RetryPolicy(sleep=sleeps, clock=lambda: NOW, **options)
    source = OdsSource(portal.url_for(DATASET_ID, query), retry=policy)
    try:
        return await source.fetch(last)
    finally:
        await source.aclose()


async def test_downloads_the_whole_dataset_as_jsonl(portal: FakePortal, sleeps: Sleeps) -> None:
    raw = await fetch(portal, sleeps)
    assert (raw.complete, raw.problem, len(raw.rows)) == (True, None, len(story().first.rows))
    assert raw.version == f"{story().first.modified.isoformat()}|{len(story().first.rows)}"
    assert raw.meta["format"] == "jsonl"
    assert raw.meta["records_count"] == len(story().first.rows)
    assert raw.rows[0]["geores"] == story().first.rows[0]["geores"]
    assert (portal.metadata_hits, portal.downloads, sleeps) == (1, 1, [])


async def test_unchanged_metadata_means_no_download(portal: FakePortal, sleeps: Sleeps) -> None:
    first = await fetch(portal, sleeps)
    again = await fetch(portal, sleeps, first.version)
    assert (again.unchanged, again.complete, again.rows, again.version) == (True, True, [], first.version)
    assert (portal.metadata_hits, portal.downloads) == (2, 1)
    portal.publish(DATASET_ID, story().second.rows, modified=story().second.modified)
    changed = await fetch(portal, sleeps, first.version)
    assert not changed.unchanged
    assert len(changed.rows) == len(story().second.rows)
    assert (portal.metadata_hits, portal.downloads) == (3, 2)


async def test_429_waits_until_reset_time_then_succeeds(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.fail_next(429, reset_time=NOW + timedelta(seconds=5))
    raw = await fetch(portal, sleeps)
    assert raw.complete
    assert sleeps == [5.0]


async def test_a_far_reset_time_is_capped_by_max_wait(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.fail_next(429, 2, reset_time=NOW + timedelta(hours=6), endpoint="jsonl")
    raw = await fetch(portal, sleeps, max_wait=30.0)
    assert raw.complete
    assert sleeps == [30.0, 30.0]


async def test_retry_after_header_is_honoured(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.fail_next(503, retry_after=3)
    raw = await fetch(portal, sleeps)
    assert raw.complete
    assert sleeps == [3.0]


async def test_503_twice_then_success_with_backoff_and_jitter(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.fail_next(503, 2)
    raw = await fetch(portal, sleeps, backoff=2.0)
    assert raw.complete
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] <= 2.0 <= sleeps[1] <= 4.0


async def test_persistent_errors_give_an_incomplete_snapshot(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.fail_next(500, 10)
    raw = await fetch(portal, sleeps, attempts=3)
    assert (raw.complete, raw.rows, raw.version) == (False, [], "")
    assert raw.problem is not None
    assert raw.problem.startswith("metadata: HTTP 500 from http://127.0.0.1:")
    assert len(sleeps) == 2


@pytest.mark.parametrize(("declare_length", "problem"), [
    (False, "jsonl download: connection lost after "),
    (True, "jsonl download: connection lost after "),
])
async def test_connection_dropped_midway(portal: FakePortal, sleeps: Sleeps, declare_length: bool,
                                         problem: str) -> None:
    portal.truncate_next(declare_length=declare_length)
    raw = await fetch(portal, sleeps)
    assert raw.complete is False
    assert (raw.problem or "").startswith(problem)
    assert 0 < len(raw.rows) < len(story().first.rows)
    assert sleeps == []


async def test_last_line_cut_in_a_clean_response(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.truncate_next(close=False, at=0.3)
    raw = await fetch(portal, sleeps)
    assert raw.complete is False
    assert (raw.problem or "").startswith("jsonl download: last line cut after ")


async def test_fewer_rows_than_announced(portal: FakePortal, sleeps: Sleeps) -> None:
    rows = story().first.rows
    portal.publish(DATASET_ID, rows, modified=NOW, records_count=len(rows) + 12)
    raw = await fetch(portal, sleeps)
    assert raw.complete is False
    assert raw.problem == f"got {len(rows)} rows, the portal announces {len(rows) + 12}"
    assert len(raw.rows) == len(rows)


async def test_csv_export_when_jsonl_is_missing(portal: FakePortal, sleeps: Sleeps) -> None:
    reference = await fetch(portal, sleeps)
    portal.disable_export("jsonl")
    raw = await fetch(portal, sleeps)
    assert (raw.complete, raw.meta["format"], len(raw.rows)) == (True, "csv", len(reference.rows))
    assert raw.rows[0]["geores"] == "{lat}, {lon}".format(**reference.rows[0]["geores"])
    adapter = adapter_for(portal.url_for(DATASET_ID))
    assert {r.key: r.fingerprint for r in adapter.to_snapshot(raw).records} == \
           {r.key: r.fingerprint for r in adapter.to_snapshot(reference).records}


async def test_cut_csv_export_is_incomplete(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.disable_export("jsonl")
    portal.truncate_next(endpoint="csv", close=False)
    raw = await fetch(portal, sleeps)
    assert raw.complete is False
    assert (raw.problem or "").startswith("csv download: CSV export ends mid-line after ")


async def test_records_pages_past_the_offset_cap(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.disable_export("jsonl", "csv", status=400)
    raw = await fetch(portal, sleeps)
    total = len(story().first.rows)
    assert total > 10_000
    assert (raw.complete, raw.problem, raw.meta["format"], len(raw.rows)) == (True, None, "records", total)
    adapter = adapter_for(portal.url_for(DATASET_ID))
    assert len({r.key for r in adapter.to_snapshot(raw).records}) == total
    assert portal.counters.record_pages == -(-total // 100)
    keyset = [q for q in portal.counters.queries if "where=" in q]
    assert keyset
    assert all("offset=0" in q for q in keyset[:1])
    assert all(status == 200 for endpoint, status in portal.counters.requests if endpoint == "records")


async def test_where_passthrough_counts_the_filtered_rows(portal: FakePortal, sleeps: Sleeps) -> None:
    raw = await fetch(portal, sleeps, query='where=code_postal >= "75000" and code_postal < "76000"')
    expected = [r for r in story().first.rows if "75000" <= (r["code_postal"] or "") < "76000"]
    assert (raw.complete, len(raw.rows)) == (True, len(expected))
    assert all(r["code_postal"].startswith("75") for r in raw.rows)


async def test_apikey_is_sent_and_masked() -> None:
    async with FakePortal(apikey="s3cret") as fake:
        fake.publish(DATASET_ID, story().first.rows[:50], modified=NOW)
        good = open_source(fake.url_for(DATASET_ID, "apikey=s3cret"))
        bad = open_source(fake.url_for(DATASET_ID, "apikey=wrong"))
        try:
            assert (await good.fetch(None)).complete
            refused = await bad.fetch(None)
        finally:
            await good.aclose()
            await bad.aclose()
        assert "apikey" not in "".join(fake.counters.queries)
        assert set(fake.counters.authorizations) == {"Apikey s3cret", "Apikey wrong"}
    assert good.url.endswith("?apikey=***")
    assert isinstance(good, OdsSource)
    assert good.geturl(privacy=False).endswith("?apikey=s3cret")
    assert (refused.complete, "wrong" in (refused.problem or "")) == (False, False)
    assert (refused.problem or "").startswith("metadata: HTTP 401 from ")


async def test_unknown_dataset(portal: FakePortal, sleeps: Sleeps) -> None:
    source = OdsSource(portal.url_for("nope"), retry=RetryPolicy(sleep=sleeps))
    raw = await source.fetch(None)
    await source.aclose()
    assert raw.problem == f"metadata: HTTP 404 from {portal.base_url}/api/explore/v2.1/catalog/datasets/nope: " \
                          "Unknown dataset: nope"


async def test_unreachable_portal(sleeps: Sleeps) -> None:
    fake = FakePortal()
    await fake.start()
    url = fake.url_for(DATASET_ID)
    await fake.close()
    source = OdsSource(url, retry=RetryPolicy(sleep=sleeps, attempts=2))
    raw = await source.fetch(None)
    await source.aclose()
    assert (raw.complete, len(sleeps)) == (False, 1)
    assert (raw.problem or "").startswith("metadata: cannot reach ")


async def test_shared_session_is_left_open(portal: FakePortal) -> None:
    async with aiohttp.ClientSession() as session:
        source = open_source(portal.url_for(DATASET_ID), session=session)
        assert (await source.fetch(None)).complete
        await source.aclose()
        assert not session.closed


async def test_portal_enforces_the_records_limits(portal: FakePortal) -> None:
    base = f"{portal.base_url}/api/explore/v2.1/catalog/datasets/{DATASET_ID}/records"
    async with aiohttp.ClientSession() as session:
        async with session.get(base, params={"limit": "101"}) as too_many:
            assert too_many.status == 400
            assert (await too_many.json())["error_code"] == "InvalidRESTParameterError"
        async with session.get(base, params={"limit": "100", "offset": "9950"}) as too_far:
            assert too_far.status == 400
        async with session.get(base, params={"where": "nonsense("}) as bad_where:
            assert (await bad_where.json())["error_code"] == "ODSQLError"
        async with session.get(base, params={"limit": "2", "order_by": "numero_inspection desc"}) as page:
            body = await page.json()
    assert body["total_count"] == len(story().first.rows)
    assert len(body["results"]) == 2
    assert body["results"][0]["numero_inspection"] >= body["results"][1]["numero_inspection"]


async def test_demo_story_through_the_portal_shows_every_change_kind(portal: FakePortal, sleeps: Sleeps) -> None:
    adapter = adapter_for(portal.url_for(DATASET_ID))
    first = adapter.to_snapshot(await fetch(portal, sleeps))
    portal.publish(DATASET_ID, story().second.rows, modified=story().second.modified)
    second = adapter.to_snapshot(await fetch(portal, sleeps, first.version))
    previous = {r.key: r for r in first.records}
    changes = diff(previous, second.records, complete=second.complete, at=NOW, version=second.version,
                   profile=ALIMCONFIANCE)
    kinds = {kind for change in changes for kind in change.kinds}
    assert kinds == {"new_inspection", "downgrade", "upgrade", "updated", "aged_out", "removed"}
    by_key = {c.key: c for c in changes}
    for edit in story().edits:
        assert edit.kind in by_key[edit.key].kinds, edit


async def test_nothing_escapes_fetch_even_for_nonsense_metadata() -> None:
    async def metadata(request: web.Request) -> web.Response:
        return web.json_response({"metas": {"default": {"modified": "x", "records_count": 1}}, "fields": 5})

    app = web.Application()
    app.router.add_get("/api/explore/v2.1/catalog/datasets/odd", metadata)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    source = OdsSource(f"ods+http://127.0.0.1:{site.port}/odd")
    try:
        raw = await source.fetch(None)
    finally:
        await source.aclose()
        await runner.cleanup()
    assert raw.complete is False
    assert (raw.problem or "").startswith("unexpected TypeError")


async def progress_of(portal: FakePortal, sleeps: Sleeps) -> tuple[RawSnapshot, list[tuple[int, int | None]]]:
    told: list[tuple[int, int | None]] = []
    source = OdsSource(portal.url_for(DATASET_ID), retry=RetryPolicy(sleep=sleeps, clock=lambda: NOW))
    source.report_downloads(lambda received, total: told.append((received, total)))
    try:
        return await source.fetch(None), told
    finally:
        await source.aclose()


@pytest.mark.parametrize("export", ["jsonl", "csv"])
async def test_a_download_reports_its_progress(portal: FakePortal, sleeps: Sleeps, export: str) -> None:
    if export == "csv":
        portal.disable_export("jsonl")
    raw, told = await progress_of(portal, sleeps)
    assert raw.complete
    received = [r for r, _ in told]
    assert len(told) > 2
    assert received == sorted(received)
    assert told[-1] == (received[-1], received[-1])  # the end is told
    assert {total for _, total in told[:-1]} <= {None, received[-1]}


async def test_a_cut_download_never_reports_an_end(portal: FakePortal, sleeps: Sleeps) -> None:
    portal.truncate_next(declare_length=True)
    raw, told = await progress_of(portal, sleeps)
    assert not raw.complete
    assert told
    assert all(total is None or received < total for received, total in told)
