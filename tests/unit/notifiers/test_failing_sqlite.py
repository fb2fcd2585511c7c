"""The embedded runtime's store of failing destinations (notifiers/failing_sqlite.py) over a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from notifiers.failing_sqlite import SqliteFailures
from streams.sqlite import Database

HOOK, OTHER = "webhook+https://partner.example/h", "webhook+https://other.example/h"


async def test_a_run_of_failures_keeps_its_start_until_a_success_ends_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    db = await Database(url).open()
    try:
        failures = SqliteFailures(db)
        assert await failures.failed(HOOK, 100.0) == 100.0
        assert await failures.failed(HOOK, 160.0) == 100.0  # the same run
        await failures.succeeded([OTHER])  # never failed: nothing to end
        await failures.succeeded([HOOK])
        assert await failures.failed(HOOK, 200.0) == 200.0  # a new run
    finally:
        await db.close()

    reopened = await Database(url).open()
    try:
        assert await SqliteFailures(reopened).failed(HOOK, 300.0) == 200.0  # the run survives a restart
    finally:
        await reopened.close()
