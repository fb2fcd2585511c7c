"""`vigie tenants` and the API's exposure rule as an operator meets them, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def vigie(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VIGIE_STATE": f"sqlite:///{tmp_path / 'vigie.db'}", "COLUMNS": "200", **env}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=60, check=False, cwd=tmp_path)


def test_add_list_revoke(tmp_path: Path) -> None:
    added = vigie(tmp_path, "tenants", "add", "booking", "--scopes", "read")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip().splitlines()[-1]
    assert key.startswith("vk_")
    [listed] = json.loads(vigie(tmp_path, "tenants", "list", "--json").stdout)
    assert (listed["tenant"], listed["scopes"], listed["revoked"], key.startswith(f"vk_{listed['id']}_")) == (
        "booking", ["read"], False, True)
    assert "digest" not in listed
    assert key not in vigie(tmp_path, "tenants", "list").stdout
    assert vigie(tmp_path, "tenants", "revoke", listed["id"]).returncode == 0
    assert json.loads(vigie(tmp_path, "tenants", "list", "--json").stdout)[0]["revoked"] is True
    assert vigie(tmp_path, "tenants", "revoke", listed["id"]).returncode == 1
    bad = vigie(tmp_path, "tenants", "add", "Not A Name")
    assert (bad.returncode, "tenant name" in bad.stderr) == (2, True)


def test_api_refuses_to_listen_beyond_loopback_without_keys(tmp_path: Path) -> None:
    refused = vigie(tmp_path, "api", "--host", "0.0.0.0", "--port", "0")  # noqa: S104 - the point
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 with no API key" in refused.stderr


def test_subscribe_refuses_internal_webhook_targets_by_default(tmp_path: Path) -> None:
    for target in ("webhook+http://127.0.0.1:6379/", "webhook+https://169.254.169.254/", "webhook+https://10.0.0.1/"):
        made = vigie(tmp_path, "subscribe", "--to", target, "--everywhere", VIGIE_WEBHOOK_ALLOW="")
        assert made.returncode == 2, target
        assert "refused by the outbound guard" in made.stderr
    allowed = vigie(tmp_path, "subscribe", "--to", "webhook+http://127.0.0.1:8080/hook", "--everywhere",
                    VIGIE_WEBHOOK_ALLOW="127.0.0.1")
    assert allowed.returncode == 0, allowed.stderr
