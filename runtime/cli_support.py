"""What the `vigie` command line shares beyond its commands: a parser whose errors are one line, option values
that start with `-` (`--radius -1km` is a value, refused for what it is), validation errors named by option, the
version, the exit code of a run, and the distributed roles' advice when their extras are missing."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

import pydantic
from rich.console import Console

from core.urls import mask_url
from runtime.errors import DELIVERIES_LEFT, INSTALL, OK, SOURCE_FAILED, UsageError
from streams.processor import Outcome

VALUE_OPTIONS = frozenset({"--radius", "--near", "--bbox", "--rating-at-least", "--limit", "--port"})
_NUMBERISH = re.compile(r"-[\d.]")
OPTION_OF = {"radius_m": "--radius", "rating_at_least": "--rating-at-least", "datasets": "--dataset",
             "to": "--to", "near": "--near"}
HINTS = {
    "commune": "an INSEE commune code: 5 digits, or 2A/2B and 3 digits (75056, 2A004)",
    "postcode": "a postcode: 5 digits (75001)",
    "departement": "a département code: 2 digits, 2A, 2B or 97x (69, 2A, 974)",
    "region": "an INSEE region code: 2 digits (84)",
    "radius_m": "a distance above 0 and up to 100km: 500m, 1km, 2.5km",
    "secret": "a Standard Webhooks secret: whsec_ and at least 24 base64 characters",
}
RolesAdder = Callable[[Any], None]


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line that says where the help is (instead of a usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def package_version() -> str:
    try:
        return version("vigie")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "unknown"


def joined(argv: Sequence[str]) -> list[str]:
    """`--radius -1km` as `--radius=-1km`: a value that starts with `-` is a value, and gets judged as one."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in VALUE_OPTIONS and _NUMBERISH.match(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def option_errors(exc: pydantic.ValidationError) -> str:
    """A subscription's invalid fields in one line, each named as the option the user typed."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        option = OPTION_OF.get(field, f"--{field.replace('_', '-')}") if field else ""
        hint = HINTS.get(field)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and hint:
            message = f"expected {hint}"
        elif hint and error["type"] != "value_error":  # our own validators already say what is expected
            message = f"{message}; expected {hint}"
        shown = f" {error['input']!r}" if field and not isinstance(error["input"], dict | list) else ""
        parts.append(f"{option}{shown}: {message}" if option else message)
    return "invalid subscription: " + "; ".join(parts)


def run_exit_code(summary: dict[str, Any]) -> int:
    """1 when a source failed or was incomplete, else 3 when deliveries failed and are left, else 0."""
    for source in summary.get("sources", []):
        if source.get("problem") or not (source.get("complete") or source.get("unchanged")):
            return SOURCE_FAILED
    return DELIVERIES_LEFT if summary.get("failed") or summary.get("dead") else OK


def add_roles(sub: Any, load: Callable[[], RolesAdder]) -> None:
    """The distributed roles' subcommands; when their extras are missing, the same names, saying what to install."""
    try:
        adder = load()
    except ImportError as exc:
        missing = f"{getattr(exc, 'name', None) or exc} is not installed"
        for name in ("producer", "streams", "notifier", "bot", "healthcheck"):
            # "+" as the option prefix: whatever options follow are taken as they are, and explained below
            stub = sub.add_parser(name, help=f"distributed role (needs {INSTALL})", prefix_chars="+", add_help=False)
            stub.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
            stub.set_defaults(func=_missing_extras(name, missing))
        return
    adder(sub)


def _missing_extras(name: str, missing: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        raise UsageError(f"`vigie {name}` is a distributed role and needs the kafka and redis extras ({missing}): "
                         f"{INSTALL}")

    return command


def describe_poll(outcome: Outcome, seconds: float) -> str:
    """One poll in one line: `source: 1,234 rows, 3 created, 2 updated, 0 removed (downgrade 1), 5 deliveries,
    0 held, 1 quarantined, 2.3 s`; a failure or an incomplete snapshot says so first."""
    counts = outcome.counts()
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(outcome.kinds().items()))
    state = ("" if outcome.complete or outcome.unchanged else "INCOMPLETE, ") + (
        f"FAILED ({outcome.problem}), " if outcome.problem else "")
    if outcome.unchanged:
        body = "unchanged"
    else:
        body = (f"{outcome.rows:,} rows, " + ", ".join(f"{counts.get(op, 0)} {op}"
                                                     for op in ("created", "updated", "removed"))
                + (f" ({kinds})" if kinds else "") + f", {len(outcome.deliveries)} deliveries, "
                f"{len(outcome.held)} held, {outcome.quarantined} quarantined")
    return f"{mask_url(outcome.source)}: {state}{body}, {seconds:.1f} s"


def poll_line(console: Console) -> Callable[[Outcome, float], None]:
    """What `vigie run` tells after each poll, on stderr."""
    def polled(outcome: Outcome, seconds: float) -> None:
        console.print(describe_poll(outcome, seconds), markup=False, highlight=False, soft_wrap=True)

    return polled
