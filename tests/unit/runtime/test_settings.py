"""Settings: environment over TOML file over defaults; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.settings import Settings


def test_defaults_are_the_embedded_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.bus, settings.state, settings.sources) == ("memory://", "sqlite:///vigie.db", [])
    assert settings.subscription_store == settings.state


def test_environment_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "vigie.toml"
    config.write_text('sources = ["ods+https://a.example/x"]\npoll_interval = 60\nstate = "sqlite:///from-file.db"\n')
    monkeypatch.setenv("VIGIE_CONFIG", str(config))
    monkeypatch.setenv("VIGIE_STATE", "sqlite:///from-env.db")
    settings = Settings()
    assert settings.sources == ["ods+https://a.example/x"]
    assert settings.poll_interval == 60
    assert settings.state == "sqlite:///from-env.db"


def test_sources_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_SOURCES", "ods+https://a.example/x, file:///tmp/b.csv,")
    assert Settings().sources == ["ods+https://a.example/x", "file:///tmp/b.csv"]


def test_secrets_are_masked_when_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    settings = Settings()
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-very-secret"
    printed = json.dumps(settings.masked()) + repr(settings) + str(settings)
    assert "very-secret" not in printed


def test_settings_are_frozen_and_validated() -> None:
    settings = Settings(poll_interval=5)
    with pytest.raises(ValueError, match="frozen"):
        settings.poll_interval = 10  # type: ignore[misc]
    with pytest.raises(ValueError, match="greater than 0"):
        Settings(poll_interval=0)


def test_the_api_role_reads_the_deployment_names_and_its_republish_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_NAMESPACE", "team-a")
    monkeypatch.setenv("VIGIE_TOPIC_PREFIX", "a.")
    monkeypatch.setenv("VIGIE_REPUBLISH_INTERVAL", "5")
    settings = Settings()
    assert (settings.namespace, settings.topic_prefix, settings.republish_interval) == ("team-a", "a.", 5.0)
    with pytest.raises(ValueError, match="greater than 0"):
        Settings(republish_interval=0)
