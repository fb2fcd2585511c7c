"""The embedded runtime keeps one match index and rebuilds it only when the subscription store changed."""

from __future__ import annotations

from pathlib import Path

from core.geo import Everywhere
from core.model import Subscription
from runtime.embedded import Embedded
from runtime.settings import Settings
from subscriptions.sqlite import SqliteSubscriptionStore


async def test_one_index_until_the_store_changes(tmp_path: Path) -> None:
    settings = Settings(state=f"sqlite:///{tmp_path / 'vigie.db'}", sources=[])
    async with Embedded(settings) as vigie:
        first = await vigie.matcher()
        assert await vigie.matcher() is first
        await vigie.subscriptions.put(Subscription("s1", Everywhere(), "console://"))
        second = await vigie.matcher()
        assert second is not first
        assert "s1" in second
        other = SqliteSubscriptionStore(settings.subscription_store)  # another process's `vigie subscribe`
        try:
            await other.put(Subscription("s2", Everywhere(), "console://"))
            third = await vigie.matcher()
            assert "s2" in third
            await other.delete("s1")
            assert "s1" not in await vigie.matcher()
        finally:
            await other.aclose()
