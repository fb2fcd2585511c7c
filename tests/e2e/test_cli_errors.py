"""`vigie` as a newcomer drives it by hand: every mistake is one line on stderr naming the setting, option or
file and what would be accepted, with exit code 2 and no traceback; `vigie run --once` tells cron what went wrong
(1: a source failed or was incomplete, 3: deliveries failed and are left)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXCERPT = Path(__file__).parent.parent.parent / "runtime" / "demo_data" / "official-layout-2023-2024-excerpt.csv"
SOURCE = f"file://{EXCERPT}#dataset=alimconfiance"
WITHOUT = "import sys; sys.modules.update(dict.fromkeys({mods}, None)); from runtime.cli import main; sys.exit(main())"


def vigie(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          without: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`vigie ARGS` in `tmp_path`; `without`: modules made unimportable, as when an extra is not installed."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_") or k == "VIGIE_WEBHOOK_ALLOW"}
    environment.update({"VIGIE_STATE": f"sqlite:///{tmp_path / 'vigie.db'}", "COLUMNS": "200", **(env or {})})
    head = ["-c", WITHOUT.format(mods=list(without))] if without else ["-m", "runtime.cli"]
    return subprocess.run([sys.executable, *head, *args], capture_output=True, text=True, env=environment,
                          timeout=60, check=False, cwd=tmp_path)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


BAD_SETTINGS = [
    ({"VIGIE_SOURCES": "https://example.org/data.csv"}, ["run", "--once"],
     "VIGIE_SOURCES='https://example.org/data.csv': no source for https://example.org/data.csv: use ods+https://"),
    ({"VIGIE_SOURCES": "https://example.org/data.csv"}, ["run", "--once"], "csv+https://example.org/data.csv"),
    ({"VIGIE_SOURCES": "ftp://example.org/x.csv"}, ["run", "--once"], "no source for ftp://example.org/x.csv"),
    ({"VIGIE_SOURCES": "json+http://example.org/x"}, ["run", "--once"], "no source for json+http://"),
    ({"VIGIE_SOURCES": "csv+https://bad host/x.csv"}, ["run", "--once"], "host name 'bad host' contains a space"),
    ({"VIGIE_POLL_INTERVAL": "abc"}, ["run", "--once"], "VIGIE_POLL_INTERVAL='abc': Input should be a valid number"),
    ({"VIGIE_STATE": "redis://localhost/0"}, ["config"], "use a path (vigie.db), sqlite:///PATH or memory://"),
    ({"VIGIE_BUS": "amqp://u:hunter2@h"}, ["config"], "amqp://u:***@h is not a bus"),
]


@pytest.mark.parametrize(("env", "args", "expected"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], args: list[str],
                                            expected: str) -> None:
    result = vigie(tmp_path, *args, env=env)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"vigie {args[0]}: invalid setting ")
    assert expected in line
    assert "hunter2" not in line


def test_a_malformed_configuration_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "vigie.toml").write_text("poll_interval = [\n")
    result = vigie(tmp_path, "config")
    assert result.returncode == 2
    assert one_line(result).startswith("vigie config: vigie.toml: not valid TOML")
    missing = vigie(tmp_path, "config", env={"VIGIE_CONFIG": "elsewhere.toml"})
    assert (missing.returncode, one_line(missing)) == (2, "vigie config: elsewhere.toml: no such configuration file "
                                                          "(VIGIE_CONFIG)")


def test_a_setting_from_the_file_is_named_by_its_key(tmp_path: Path) -> None:
    (tmp_path / "vigie.toml").write_text('poll_interval = "hourly"\n')
    result = vigie(tmp_path, "config")
    assert "poll_interval in vigie.toml='hourly'" in one_line(result)


def test_a_plain_path_is_the_sqlite_state(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "console://", "--everywhere", env={"VIGIE_STATE": "state.db"})
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "state.db").exists()
    listed = vigie(tmp_path, "subscriptions", env={"VIGIE_STATE": "state.db"})
    assert listed.returncode == 0, listed.stderr
    assert "1 subscription(s)" in listed.stdout


BAD_OPTIONS = [
    (["--departement", "999"], "--departement '999': expected a département code: 2 digits, 2A, 2B or 97x"),
    (["--near", "48.85,2.35", "--radius", "-1km"], "--radius '-1km': not a distance"),
    (["--near", "48.85,2.35", "--radius", "0m"], "--radius 0.0: Input should be greater than 0; expected a distance"),
    (["--postcode", "7500"], "--postcode '7500': expected a postcode: 5 digits"),
    (["--polygon", "missing.json"], "--polygon missing.json: cannot be read"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_OPTIONS)
def test_a_bad_subscription_option_is_one_line_naming_it(tmp_path: Path, args: list[str], expected: str) -> None:
    result = vigie(tmp_path, "subscribe", "--to", "console://", *args)
    assert result.returncode == 2
    assert expected in one_line(result)


def test_an_invalid_polygon_and_a_host_with_a_space(tmp_path: Path) -> None:
    (tmp_path / "open.json").write_text(json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}))
    polygon = vigie(tmp_path, "subscribe", "--to", "console://", "--polygon", "open.json")
    assert polygon.returncode == 2
    assert "invalid subscription: --polygon: a polygon needs at least one closed ring" in one_line(polygon)
    (tmp_path / "broken.json").write_text("{")
    broken = vigie(tmp_path, "subscribe", "--to", "console://", "--polygon", "broken.json")
    assert "--polygon broken.json: not JSON" in one_line(broken)
    host = vigie(tmp_path, "subscribe", "--to", "webhook+https://bad host/hook", "--everywhere")
    assert host.returncode == 2
    assert "host name 'bad host' contains a space" in one_line(host)


def test_missing_extras_say_what_to_install(tmp_path: Path) -> None:
    store = vigie(tmp_path, "subscriptions", env={"VIGIE_STORE": "redis://:hunter2@127.0.0.1:6379/0"},
                  without=("redis",))
    assert store.returncode == 2
    line = one_line(store)
    assert "VIGIE_STORE='redis://:***@127.0.0.1:6379/0': redis:// needs the redis extra" in line
    assert line.endswith("pip install 'vigie[kafka,redis]'")
    producer = vigie(tmp_path, "producer", "--once", without=("aiokafka", "faust"))
    assert producer.returncode == 2
    assert one_line(producer).endswith("needs the kafka and redis extras (aiokafka is not installed): "
                                       "pip install 'vigie[kafka,redis]'")


def test_usage_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    unknown = vigie(tmp_path, "subscriptions", "--bogus")
    assert (unknown.returncode, one_line(unknown)) == (2, "vigie: unrecognized arguments: --bogus "
                                                          "(see `vigie --help`)")
    debug = vigie(tmp_path, "--debug", "config", env={"VIGIE_POLL_INTERVAL": "abc"})
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr


def test_version_and_listing_by_default(tmp_path: Path) -> None:
    version = vigie(tmp_path, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("vigie ")
    assert vigie(tmp_path, "subscriptions").stdout.strip().startswith("0 subscription(s)")


def test_run_once_exit_codes_tell_cron_what_failed(tmp_path: Path) -> None:
    unreachable = vigie(tmp_path, "run", "--once", "--json", env={"VIGIE_SOURCES": f"file://{tmp_path}/none.csv"})
    assert unreachable.returncode == 1, unreachable.stderr
    assert json.loads(unreachable.stdout.splitlines()[-1])["sources"][0]["complete"] is False
    fine = vigie(tmp_path, "run", "--once", "--json", env={"VIGIE_SOURCES": SOURCE})
    assert fine.returncode == 0, fine.stderr
    failing = tmp_path / "failing"
    failing.mkdir()
    made = vigie(failing, "subscribe", "--to", "webhook+http://127.0.0.1:9/hook", "--everywhere")
    assert made.returncode == 0, made.stderr
    failed = vigie(failing, "run", "--once", "--json", env={"VIGIE_SOURCES": SOURCE, "VIGIE_BASELINE_ALERTS": "true"})
    summary = json.loads(failed.stdout.splitlines()[-1])
    assert (failed.returncode, summary["delivered"]) == (3, 0), failed.stderr
    assert summary["failed"] > 0
