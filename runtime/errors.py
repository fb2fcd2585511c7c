"""How `vigie` fails: one line on stderr naming what is wrong and what would be accepted, and an exit code cron
and CI can act on. A traceback only with `vigie --debug …`.

    0  OK               done
    1  SOURCE_FAILED    a source failed or its snapshot was incomplete (`vigie run --once`), or an unexpected error
    2  USAGE            a usage or configuration error: an option, a setting, a URL, an input file
    3  DELIVERIES_LEFT  deliveries failed and are left: retries scheduled or dead letters (`vigie run --once`)

    UsageError        raised by the commands for a user's mistake (exit 2)
    ConfigError       runtime.settings: the configuration file is missing or malformed (exit 2)
    ValidationError   pydantic, of Settings: one line per setting, named as the user set it (exit 2)
    ModuleNotFoundError of an optional extra: the `pip install` line that fixes it (exit 2)

Every line goes through core.urls.mask_text: no password or token of a URL reaches the terminal.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import pydantic

from core.urls import mask_text
from runtime.settings import ConfigError, config_file

OK, SOURCE_FAILED, USAGE, DELIVERIES_LEFT = 0, 1, 2, 3
INSTALL = "pip install 'vigie[kafka,redis]'"
EXTRA_MODULES = {"redis": "redis", "aiokafka": "kafka", "faust": "kafka", "mode": "kafka", "telegram": "telegram",
                 "rocksdict": "rocksdb"}
_SETTINGS_MODELS = ("Settings", "DistributedSettings")


class UsageError(Exception):
    """A user's mistake, said in one line (what is wrong, what would be accepted): exit 2."""


def _where(field: str) -> str:
    """How the user set `field`: its environment variable, else its key in the configuration file."""
    env = f"VIGIE_{field.upper()}"
    for name in (env, field.upper()):  # SLACK_BOT_TOKEN is read without the prefix too
        if name in os.environ:
            return name
    try:
        path = config_file()
    except ConfigError:
        path = None
    return f"{field} in {path}" if path else env


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}…"


def settings_line(exc: pydantic.ValidationError) -> str:
    """One line for every invalid setting: `VIGIE_POLL_INTERVAL='abc': Input should be a valid number`."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        value = f"={_shown(error['input'])}" if error["type"] != "missing" and not isinstance(error["input"], dict) \
            else ""
        parts.append(f"{_where(field)}{value}: {message}")
    return "invalid setting " + "; ".join(parts)


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    extra = EXTRA_MODULES.get((exc.name or "").partition(".")[0])
    if extra is None:
        return None
    install = INSTALL if extra in ("kafka", "redis") else f"pip install 'vigie[{extra}]'"
    return f"this needs the optional {extra} extra ({exc.name} is not installed): {install}"


def explain(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one line) for an error the user can fix; None for an unexpected one."""
    if isinstance(exc, UsageError | ConfigError):
        return USAGE, str(exc)
    if isinstance(exc, pydantic.ValidationError) and exc.title in _SETTINGS_MODELS:
        return USAGE, settings_line(exc)
    if isinstance(exc, ModuleNotFoundError):
        line = _missing_extra(exc)
        return (USAGE, line) if line else None
    return None


def fail(exc: BaseException, *, prog: str, debug: bool) -> int:
    """Report `exc` on stderr as `prog: one line` (and its traceback with `debug`); the exit code."""
    known = explain(exc)
    if debug:
        traceback.print_exception(exc)
    code, line = known or (SOURCE_FAILED, f"unexpected {type(exc).__name__}: {exc}"
                           + ("" if debug else " (vigie --debug … shows the traceback)"))
    first = " ".join(line.split())  # one line, whatever the exception said
    sys.stderr.write(f"{prog}: {mask_text(first)}\n")
    return code
