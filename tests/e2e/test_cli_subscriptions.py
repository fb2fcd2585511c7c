"""The `vigie` command line as a user types it: subscribe, list, unsubscribe, config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from standardwebhooks import Webhook


def vigie(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VIGIE_STATE": f"sqlite:///{tmp_path / 'vigie.db'}", "COLUMNS": "200",
                   **(env or {})}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=60, check=False, cwd=tmp_path)


def test_subscribe_list_unsubscribe(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "console://", "--near", "48.8566,2.3522", "--radius", "1km",
                 "--lang", "en")
    assert made.returncode == 0, made.stderr
    sub_id = made.stdout.split()[1]
    listed = json.loads(vigie(tmp_path, "subscriptions", "list", "--json").stdout)
    assert listed == [{"id": sub_id, "destination": "console://",
                       "area": {"type": "circle", "lat": 48.8566, "lon": 2.3522, "radius_m": 1000.0},
                       "kinds": [], "min_rating": None, "lang": "en"}]
    assert vigie(tmp_path, "unsubscribe", sub_id).returncode == 0
    again = vigie(tmp_path, "unsubscribe", sub_id)
    assert again.returncode == 1
    assert "no subscription" in again.stderr


def test_webhook_secret_is_generated_printed_once_and_works(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "webhook+https://partner.example/hook", "--departement", "69")
    assert made.returncode == 0, made.stderr
    secret = next(word for word in made.stdout.split() if word.startswith("whsec_"))
    Webhook(secret)  # a valid Standard Webhooks secret
    listing = vigie(tmp_path, "subscriptions", "list").stdout
    assert secret not in listing
    assert "departement 69" in listing


@pytest.mark.parametrize(("args", "message"), [
    (["--to", "console://"], "give exactly one area"),
    (["--to", "console://", "--commune", "75056", "--everywhere"], "give exactly one area"),
    (["--to", "webhook+http://partner.example/hook", "--everywhere"], "loopback"),
    (["--to", "ftp://x", "--everywhere"], "unknown destination scheme"),
    (["--to", "console://", "--near", "48.85,2.35", "--radius", "3 miles"], "not a distance"),
])
def test_bad_subscriptions_are_refused_with_a_reason(tmp_path: Path, args: list[str], message: str) -> None:
    result = vigie(tmp_path, "subscribe", *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_config_masks_secrets(tmp_path: Path) -> None:
    result = vigie(tmp_path, "config", env={"SLACK_BOT_TOKEN": "xoxb-hidden-value"})
    assert result.returncode == 0
    assert "hidden-value" not in result.stdout
    assert json.loads(result.stdout)["slack_bot_token"] == "**********"
