"""A Slack channel that is gone for good disables every subscription to it, and `vigie subscriptions list` says why."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from core.errors import DestinationGone
from core.geo import Everywhere
from core.model import Delivery, Subscription
from notifiers import Channels
from runtime.demo.slack_api import DEFAULT_TOKEN, FakeSlackApi
from runtime.telegram import disabler
from subscriptions.sqlite import SqliteSubscriptionStore
from tests.unit.core.factories import created, inspection


async def test_channel_not_found_disables_and_shows_in_the_listing(tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 'vigie.db'}"
    store = SqliteSubscriptionStore(state)
    gone, other = (Subscription(sid, Everywhere(), dest) for sid, dest in
                   (("sub_gone", "slack://C0DELETED"), ("sub_fine", "slack://C0VIGIE01")))
    await store.put(gone)
    await store.put(other)
    await store.put(Subscription("sub_gone2", Everywhere(), "slack://C0DELETED", paused=True))
    api = FakeSlackApi()
    await api.start()
    hub = Channels(slack_token=DEFAULT_TOKEN, slack_base_url=api.base_url, timeout=5.0, on_refused=disabler(store))
    try:
        try:
            await hub.send(Delivery.of(created(inspection("k")), gone))
        except DestinationGone as exc:
            reason = str(exc)
        await hub.send(Delivery.of(created(inspection("k")), other))
    finally:
        await hub.aclose()
        await api.close()
        await store.aclose()
    assert reason.startswith("slack channel_not_found: ")
    listed = await asyncio.to_thread(vigie, tmp_path, state, "--json")
    status = {s["id"]: (s["paused"], s["disabled_reason"]) for s in json.loads(listed)}
    assert status == {"sub_gone": (False, reason), "sub_fine": (False, None), "sub_gone2": (True, reason)}
    assert "disabled: slack channel_not_found" in await asyncio.to_thread(vigie, tmp_path, state)


def vigie(cwd: Path, state: str, *args: str) -> str:
    """`vigie subscriptions list ARGS` as a user runs it; its standard output."""
    return subprocess.run([sys.executable, "-m", "runtime.cli", "subscriptions", "list", *args],
                          capture_output=True, text=True, env={**os.environ, "VIGIE_STATE": state, "COLUMNS": "250"},
                          timeout=60, check=True, cwd=cwd).stdout
