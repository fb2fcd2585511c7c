"""VIGIE_STALE_AFTER and VIGIE_FAILING_AFTER: when a source's subscribers are told it is stale or failing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runtime.settings import Settings


@pytest.mark.parametrize(("env", "seconds"), [("10d", 864_000.0), ("864000", 864_000.0), ("36h", 129_600.0)])
def test_stale_after_takes_seconds_or_a_duration(monkeypatch: pytest.MonkeyPatch, env: str, seconds: float) -> None:
    monkeypatch.setenv("VIGIE_STALE_AFTER", env)
    monkeypatch.setenv("VIGIE_FAILING_AFTER", "5")
    settings = Settings()
    assert (settings.stale_after, settings.failing_after) == (seconds, 5)


def test_defaults_suit_a_weekly_dataset() -> None:
    settings = Settings()
    assert (settings.stale_after, settings.failing_after) == (864_000.0, 3)


@pytest.mark.parametrize(("name", "value"), [("STALE_AFTER", "soon"), ("FAILING_AFTER", "0")])
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"VIGIE_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()
