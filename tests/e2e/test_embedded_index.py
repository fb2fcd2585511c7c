"""The embedded runtime keeps one match index and applies to it, in place, the subscriptions written since."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.geo import Everywhere
from core.model import Subscription
from runtime.embedded import Embedded
from runtime.settings import Settings
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.unit.core.factories import created, inspection


async def test_one_index_kept_up_to_date_in_place(tmp_path: Path) -> None:
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", sources=[])
    async with Embedded(settings) as vigie:
        first = await vigie.matcher()
        assert await vigie.matcher() is first
        await vigie.subscriptions.put(Subscription("s1", Everywhere(), "console://"))
        assert await vigie.matcher() is first
        assert "s1" in first
        other = SqliteSubscriptionStore(settings.subscription_store)  # another process's `vigie subscribe`
        try:
            await other.put(Subscription("s2", Everywhere(), "console://"))
            assert "s2" in await vigie.matcher()
            await other.delete("s1")
            await other.put(Subscription("s2", Everywhere(), "console://", paused=True))
            assert await vigie.matcher() is first
            assert "s1" not in first
            assert first.match(created(inspection("k"))) == []  # s1 gone, s2 paused
        finally:
            await other.aclose()


async def test_a_reader_the_log_left_behind_builds_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("subscriptions.sqlite.LOG_KEPT", 3)
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", sources=[])
    async with Embedded(settings) as vigie:
        first = await vigie.matcher()
        for i in range(6):
            await vigie.subscriptions.put(Subscription(f"s{i}", Everywhere(), "console://"))
        second = await vigie.matcher()
        assert second is not first
        assert len(second) == 6
