"""The command line's parser: every option and argument of every command says what it is for; option values
that start with `-` are values."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from runtime.cli import parser
from runtime.cli_support import joined, run_exit_code


def commands(root: argparse.ArgumentParser, prefix: str = "vigie") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield prefix, root
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, f"{prefix} {name}")


def test_every_option_has_help() -> None:
    missing = [f"{command} {action.dest}" for command, p in commands(parser()) for action in p._actions
               if action.help is None and not isinstance(action, argparse._SubParsersAction)]
    assert missing == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["subscribe", "--radius", "-1km"], ["subscribe", "--radius=-1km"]),
    (["subscribe", "--near", "-33.86,151.2", "--radius", "1km"], ["subscribe", "--near=-33.86,151.2", "--radius",
                                                                  "1km"]),
    (["subscribe", "--radius", "--everywhere"], ["subscribe", "--radius", "--everywhere"]),
    (["subscribe", "--label", "-1"], ["subscribe", "--label", "-1"]),
])
def test_values_that_start_with_a_dash(argv: list[str], expected: list[str]) -> None:
    assert joined(argv) == expected


@pytest.mark.parametrize(("summary", "code"), [
    ({"sources": [{"complete": True, "problem": None}], "failed": 0, "dead": 0}, 0),
    ({"sources": [{"complete": False, "unchanged": True, "problem": None}], "failed": 0, "dead": 0}, 0),
    ({"sources": [{"complete": False, "problem": None}], "failed": 0, "dead": 0}, 1),
    ({"sources": [{"complete": True, "problem": "HTTP 503"}], "failed": 2, "dead": 0}, 1),
    ({"sources": [{"complete": True, "problem": None}], "failed": 1, "dead": 0}, 3),
    ({"sources": [{"complete": True, "problem": None}], "failed": 0, "dead": 1}, 3),
])
def test_run_exit_code(summary: dict[str, object], code: int) -> None:
    assert run_exit_code(summary) == code
