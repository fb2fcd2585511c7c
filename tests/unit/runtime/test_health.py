"""A role's own problems (runtime/health.py): reported while they last, read by the healthcheck, and the check
that the subscription store did not come back empty."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime.health import Problems, check_store, read_problems


def test_a_problem_is_in_the_file_while_it_lasts(tmp_path: Path) -> None:
    path = tmp_path / "streams.problems"
    problems = Problems(path)
    assert read_problems(path) == []
    report = problems.reporter("view")
    report("current-state view updater failing (ConnectionError: refused), attempt 3")
    problems.report("subscriptions", "lost")
    assert read_problems(path) == ["subscriptions: lost",
                                   "view: current-state view updater failing (ConnectionError: refused), attempt 3"]
    report(None)
    assert read_problems(path) == ["subscriptions: lost"]
    problems.report("subscriptions", None)
    assert not path.exists()


def test_a_new_process_starts_without_the_previous_ones_problems(tmp_path: Path) -> None:
    path = tmp_path / "streams.problems"
    Problems(path).report("view", "stopped")
    assert Problems(path).current == {}
    assert read_problems(path) == []


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_an_unreadable_file_is_a_problem(tmp_path: Path, content: str) -> None:
    path = tmp_path / "streams.problems"
    path.write_text(content, encoding="utf-8")
    assert read_problems(path)[0].startswith(f"unreadable problems file {path}")


@dataclass
class Store:
    is_lost: bool

    async def lost(self) -> bool:
        return self.is_lost


async def test_a_store_that_lost_its_data_while_the_topic_holds_subscriptions_is_loud(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    problems = Problems(tmp_path / "streams.problems")
    with caplog.at_level(logging.ERROR, "runtime.health"):
        assert await check_store(Store(is_lost=True), 12, problems.reporter("subscriptions"))
    [line] = [r.getMessage() for r in caplog.records]
    assert "has lost its data (12 subscription(s) on the topic)" in line
    assert "`vigie subscriptions republish --all`" in line
    assert list(problems.current) == ["subscriptions"]


@pytest.mark.parametrize(("lost", "expected"), [(False, 12), (True, 0)], ids=["intact", "no-subscription-yet"])
async def test_nothing_to_say_otherwise(tmp_path: Path, caplog: pytest.LogCaptureFixture, lost: bool,
                                        expected: int) -> None:
    problems = Problems(tmp_path / "streams.problems")
    problems.report("subscriptions", "left from an earlier check")
    with caplog.at_level(logging.ERROR, "runtime.health"):
        assert await check_store(Store(is_lost=lost), expected, problems.reporter("subscriptions")) is None
    assert caplog.records == []
    assert problems.current == {}
