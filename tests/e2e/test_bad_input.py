"""Bad input never stops the pipeline: broken rows are quarantined with a reason, broken files emit
no removals and no alerts, and the good rows still produce their alerts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from core.geo import Everywhere
from core.model import Filter, Subscription
from notifiers import new_secret
from runtime.demo.portal import FakePortal
from runtime.demo.receiver import WebhookReceiver
from runtime.demo.snapshots import DATASET_ID, build_snapshots
from subscriptions.sqlite import SqliteSubscriptionStore

BAD_ROWS = Path(__file__).parent.parent / "fixtures" / "bad-rows"
EXCERPT = Path(__file__).parent.parent.parent / "runtime" / "demo_data" / "official-layout-2023-2024-excerpt.csv"


async def vigie(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def run_once(env: dict[str, str], *, exit_code: int = 0) -> dict[str, Any]:
    """`vigie run --once --json`'s summary; `exit_code` 1 when a source is expected to fail (cron sees it)."""
    code, out, err = await vigie(env, "run", "--once", "--json")
    assert code == exit_code, err
    return dict(json.loads(out.strip().splitlines()[-1]))


async def subscribe_everywhere(state: str, receiver: WebhookReceiver, *, min_rating: int | None = None) -> None:
    store = SqliteSubscriptionStore(state)
    secret = new_secret()
    url = receiver.add_endpoint("all", secret).replace("http://", "webhook+http://", 1)
    await store.put(Subscription("all", Everywhere(), url, Filter(min_rating=min_rating), secret=secret))
    await store.aclose()


def broken_ods_rows(good: dict[str, Any]) -> list[dict[str, Any]]:
    def variant(**changes: Any) -> dict[str, Any]:
        return {**good, "numero_inspection": f"BROKEN-{len(changes)}-{next(iter(changes))}", **changes}
    return [
        variant(geores={"lon": "abc", "lat": 48.8}),
        variant(geores={"lon": 2.35, "lat": 95.0}),
        {**good, "numero_inspection": None},
        variant(date_inspection="not a date"),
        variant(app_libelle_etablissement="CAF\ufffd DE LA GARE"),
    ]


async def test_broken_rows_are_quarantined_and_good_rows_still_alert(tmp_path: Path) -> None:
    story = build_snapshots()
    state = f"sqlite:///{tmp_path / 'vigie.db'}"
    async with FakePortal() as portal:
        receiver = WebhookReceiver()
        await receiver.start()
        await subscribe_everywhere(state, receiver, min_rating=3)  # fewer alerts: a faster test
        env = {**os.environ, "VIGIE_STATE": state, "VIGIE_SOURCES": portal.url_for(DATASET_ID)}
        portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
        await run_once(env)
        broken = broken_ods_rows(story.second.rows[0])
        portal.publish(DATASET_ID, [*story.second.rows, *broken], modified=story.second.modified)
        summary = await run_once(env)
        await receiver.close()
    assert summary["quarantined"] == len(broken)
    assert summary["deliveries"] == summary["delivered"] == len(receiver.received) > 0
    assert not any(e.event["subject"].startswith("BROKEN") for e in receiver.received)
    code, out, _ = await vigie(env, "quarantine", "--json")
    reasons = [q["reason"] for q in json.loads(out)]
    assert code == 0
    assert len(reasons) == len(broken)
    assert all(reason.strip() for reason in reasons)
    assert any("coordinate" in r or "lat" in r or "lon" in r for r in reasons)


def with_extra_rows(rows: list[dict[str, str]], header: list[str], extra: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    writer.writerows([row[h] for h in header] for row in rows)
    writer.writerows(extra)
    return buffer.getvalue()


async def test_a_broken_file_removes_nothing_and_a_fixed_one_flows_on(tmp_path: Path) -> None:
    target = tmp_path / "alimconfiance.csv"
    shutil.copy(EXCERPT, target)
    state = f"sqlite:///{tmp_path / 'vigie.db'}"
    receiver = WebhookReceiver()
    await receiver.start()
    await subscribe_everywhere(state, receiver)
    env = {**os.environ, "VIGIE_STATE": state, "VIGIE_SOURCES": f"file://{target}#dataset=alimconfiance"}
    assert (await run_once(env))["changes"]["created"] > 100

    for broken in ("html-page.csv", "binary.csv", "empty.csv", "no-header.csv"):
        shutil.copy(BAD_ROWS / broken, target)
        summary = await run_once(env, exit_code=1)
        assert summary["changes"] == {"created": 0, "updated": 0, "removed": 0}, broken
        assert summary["sources"][0]["problem"], broken
    code, out, _ = await vigie(env, "sources", "--json")
    assert code == 0
    assert json.loads(out)[0]["healthy"] is False

    with EXCERPT.open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        rows = list(reader)
        header = list(reader.fieldnames or [])
    fresh = dict(rows[0], Numero_inspection="99999999", Date_inspection="2024-09-30T02:00:00+02:00")
    short = ["ONLY", "THREE", "COLUMNS"]
    target.write_text(with_extra_rows(rows, header, [[fresh[h] for h in header], short]), encoding="utf-8")
    summary = await run_once(env)
    await receiver.close()
    assert summary["changes"] == {"created": 1, "updated": 0, "removed": 0}
    assert summary["quarantined"] == 1
    records = [e.event["subject"].split("|")[0] for e in receiver.received if e.event["data"]["op"] != "notice"]
    assert records == ["99999999"]
    notices = [e.event["type"].rpartition(".")[2] for e in receiver.received if e.event["data"]["op"] == "notice"]
    assert notices == ["source_failing", "source_recovered"], "four broken polls in a row: one incident, told twice"
