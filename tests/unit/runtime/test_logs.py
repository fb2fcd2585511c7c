"""Logging: repeats of the Kafka libraries' lines collapse into one line and a count, on a fake clock."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runtime.logs import REPEAT_BURST, handler

WINDOW_S = 10.0
UNREACHABLE = "Unable connect to node with id %s: %s"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Timers:
    """What the filter asked to be called back, and when (seconds from the request)."""

    armed: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def __call__(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.armed.append((delay_s, callback))

    def fire(self) -> None:
        armed, self.armed = self.armed, []
        for _, callback in armed:
            callback()


@dataclass
class Logs:
    """A JSON handler writing to memory, driven by a fake clock and fake timers."""

    clock: Clock = field(default_factory=Clock)
    timers: Timers = field(default_factory=Timers)
    out: io.StringIO = field(default_factory=io.StringIO)
    handler: logging.Handler = field(init=False)

    def __post_init__(self) -> None:
        self.handler = handler("json", stream=self.out, window_s=WINDOW_S, burst=1, clock=self.clock,
                               schedule=self.timers)

    def emit(self, name: str, msg: str, *args: object, level: int = logging.ERROR, after_s: float = 0.0) -> None:
        self.clock.now += after_s
        self.handler.handle(logging.LogRecord(name, level, __file__, 1, msg, args, None))

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def events(self) -> list[str]:
        return [line["event"] for line in self.lines()]


@pytest.fixture
def logs() -> Logs:
    return Logs()


def test_a_flood_is_one_line_then_a_count_when_the_window_ends(logs: Logs) -> None:
    for port in range(1000):
        logs.emit("aiokafka", UNREACHABLE, 1, f"Connect call failed ('127.0.0.1', {port})", after_s=0.005)
    assert logs.events() == ["Unable connect to node with id 1: Connect call failed ('127.0.0.1', 0)"]
    assert [delay for delay, _ in logs.timers.armed] == [pytest.approx(WINDOW_S - 0.005)]

    logs.clock.now += WINDOW_S
    logs.timers.fire()
    summary = logs.lines()[-1]
    assert summary["event"] == ("Unable connect to node with id 1: Connect call failed ('127.0.0.1', 999) "
                                "… repeated 999 times in the last 15.0s")
    assert (summary["repeated"], summary["seconds"], summary["level"], summary["logger"]) == (
        999, pytest.approx(14.995), "error", "aiokafka")


def test_the_summary_comes_before_the_next_line_once_the_window_is_over(logs: Logs) -> None:
    logs.emit("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, "NodeNotReadyError")
    logs.emit("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 1, "NodeNotReadyError", after_s=1)
    logs.emit("aiokafka.consumer.group_coordinator", "Discovered coordinator %s for group %s", 1, "g",
             level=logging.INFO, after_s=WINDOW_S)
    assert logs.events() == [
        "Failed fetch messages from 1: NodeNotReadyError",
        "Failed fetch messages from 1: NodeNotReadyError … repeated 1 times in the last 11.0s",
        "Discovered coordinator 1 for group g",
    ]
    logs.timers.fire()  # the timer of a window already summarised writes nothing more
    assert len(logs.lines()) == 3


def test_interleaved_templates_collapse_each_on_its_own(logs: Logs) -> None:
    for _ in range(50):
        logs.emit("aiokafka", UNREACHABLE, 1, "refused", after_s=0.01)
        logs.emit("aiokafka", "Unable to update metadata from %s", [1], after_s=0.01)
    logs.emit("aiokafka", UNREACHABLE, 1, "refused", after_s=WINDOW_S)
    assert logs.events() == [
        "Unable connect to node with id 1: refused",
        "Unable to update metadata from [1]",
        "Unable connect to node with id 1: refused … repeated 49 times in the last 11.0s",
        "Unable to update metadata from [1] … repeated 49 times in the last 11.0s",
        "Unable connect to node with id 1: refused",  # a new window
    ]


def test_preformatted_messages_collapse_digits_aside(logs: Logs) -> None:
    """faust logs f-strings: the template is the message, with a different number each time."""
    for size in (583, 482, 97):
        logs.emit("faust.transport.producer", f"producer buffer full size {size}", level=logging.WARNING)
    logs.emit("faust.transport.producer", "producer buffer full now", level=logging.WARNING)
    logs.clock.now += WINDOW_S
    logs.timers.fire()
    assert logs.events() == [
        "producer buffer full size 583",
        "producer buffer full now",
        "producer buffer full size 97 … repeated 2 times in the last 10.0s",
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(("aiokafka", logging.ERROR), ("aiokafka", logging.WARNING), id="level"),
        pytest.param(("aiokafka", logging.ERROR), ("aiokafka.conn", logging.ERROR), id="logger"),
        pytest.param(("streams.faust_app", logging.ERROR), ("streams.faust_app", logging.ERROR), id="ours"),
        pytest.param(("faustian", logging.ERROR), ("faustian", logging.ERROR), id="not-a-child-of-faust"),
        pytest.param(("vigie", logging.INFO), ("vigie", logging.INFO), id="another-library"),
    ],
)
def test_what_is_never_collapsed(logs: Logs, first: tuple[str, int], second: tuple[str, int]) -> None:
    (name_a, level_a), (name_b, level_b) = first, second
    logs.emit(name_a, "cannot commit %s", "x", level=level_a)
    logs.emit(name_b, "cannot commit %s", "x", level=level_b)
    assert logs.events() == ["cannot commit x", "cannot commit x"]
    assert logs.timers.armed == []


def test_mode_and_faust_children_are_collapsed(logs: Logs) -> None:
    for name in ("mode.services", "mode.services", "faust", "faust"):
        logs.emit(name, "[^--Consumer]: Stopping...", level=logging.INFO)
    assert logs.events() == ["[^--Consumer]: Stopping...", "[^--Consumer]: Stopping..."]


def test_a_window_without_repeats_ends_silently(logs: Logs) -> None:
    logs.emit("aiokafka", UNREACHABLE, 1, "refused")
    logs.emit("aiokafka", UNREACHABLE, 1, "refused", after_s=WINDOW_S)
    logs.emit("aiokafka", UNREACHABLE, 1, "refused", after_s=WINDOW_S)
    assert logs.events() == ["Unable connect to node with id 1: refused"] * 3


def test_closing_the_handler_writes_the_pending_counts(logs: Logs) -> None:
    for _ in range(3):
        logs.emit("aiokafka", UNREACHABLE, 1, "refused", after_s=1)
    logs.handler.close()
    assert logs.events() == ["Unable connect to node with id 1: refused",
                             "Unable connect to node with id 1: refused … repeated 2 times in the last 2.0s"]


def test_a_zero_window_keeps_every_line() -> None:
    out = io.StringIO()
    plain = handler("console", stream=out, window_s=0)
    for _ in range(3):
        plain.handle(logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, UNREACHABLE, (1, "refused"), None))
    assert out.getvalue().count("Unable connect to node with id 1: refused") == 3


class Signalling(io.StringIO):
    """A stream that tells when a summary line was written."""

    def __init__(self) -> None:
        super().__init__()
        self.summarised = threading.Event()

    def write(self, text: str) -> int:
        if "repeated" in text:
            self.summarised.set()
        return super().write(text)


def test_the_real_timer_writes_the_count_when_the_flood_stops() -> None:
    out = Signalling()
    real = handler("console", stream=out, window_s=0.2, burst=1)
    for _ in range(5):
        real.handle(logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, UNREACHABLE, (1, "refused"), None))
    assert out.summarised.wait(timeout=10), out.getvalue()
    assert re.search(r"Unable connect to node with id 1: refused … repeated [1-4] times in the last", out.getvalue())


def test_the_first_lines_of_a_window_pass_as_they_come() -> None:
    """A rebalance logs a handful of lines of one template: with the default burst they are written at once,
    and only a flood beyond it is counted."""
    clock, timers, out = Clock(), Timers(), io.StringIO()
    burst = handler("json", stream=out, window_s=WINDOW_S, clock=clock, schedule=timers)
    for generation in range(1, 9):
        burst.handle(logging.LogRecord("aiokafka.consumer.group_coordinator", logging.INFO, __file__, 1,
                                       "Joined group %r (generation %s)", ("g", generation), None))
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == [f"Joined group 'g' (generation {g})" for g in range(1, REPEAT_BURST + 1)]
    clock.now += WINDOW_S
    timers.fire()
    last = json.loads(out.getvalue().splitlines()[-1])
    assert (last["event"], last["repeated"]) == ("Joined group 'g' (generation 8) … repeated 3 times in the last "
                                                 f"{WINDOW_S:.1f}s", 3)


def outage_record(name: str, msg: str, *args: object, exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except type(exc):
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, sys.exc_info())


def test_an_outage_is_one_line_per_failure_kind_per_window() -> None:
    """A Redis outage: every partition of our consumers fails each second. One line per template and exception
    type is written, without its traceback (an `error` field instead), then a count when the window ends."""
    clock, timers, out = Clock(), Timers(), io.StringIO()
    logs = handler("json", stream=out, window_s=WINDOW_S, clock=clock, schedule=timers)
    refused = RedisConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
    for second in range(4):
        clock.now += 1
        for partition in range(4):
            logs.handle(outage_record("notifiers.kafka_worker", "delivering from %s failed; reading again",
                                      f"deliveries.webhook-{partition}", exc=refused))
        logs.handle(outage_record("notifiers.kafka_worker", "delivering from %s failed; reading again",
                                  "deliveries.webhook-0", exc=RedisTimeoutError(f"Timeout {second}")))
    clock.now += WINDOW_S
    timers.fire()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line.get("error"), line.get("repeated")) for line in lines] == [
        ("delivering from deliveries.webhook-0 failed; reading again",
         "ConnectionError: Error 111 connecting to 127.0.0.1:6390. Connection refused.", None),
        ("delivering from deliveries.webhook-0 failed; reading again", "TimeoutError: Timeout 0", None),
        ("delivering from deliveries.webhook-3 failed; reading again … repeated 15 times in the last 13.0s",
         None, 15),
        ("delivering from deliveries.webhook-0 failed; reading again … repeated 3 times in the last 13.0s",
         None, 3),
    ]
    assert not any("exception" in line for line in lines)


def test_other_errors_keep_a_plain_traceback_without_local_variables() -> None:
    out = io.StringIO()
    console = handler("console", stream=out)
    secret = "xoxb-not-in-the-logs"

    def fails(token: str) -> None:
        raise ValueError("bad input")

    try:
        fails(secret)
    except ValueError:
        console.handle(logging.LogRecord("vigie", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()))
    console.handle(logging.LogRecord("vigie", logging.ERROR, __file__, 1, "failed", (), None))
    text = out.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "ValueError: bad input" in text
    assert secret not in text, "no local variables in tracebacks"
    assert text.count("failed") == 2, "an error that is no outage is never collapsed"


def test_a_record_marked_collapse_repeats_once_per_window(logs: Logs) -> None:
    for _ in range(3):
        logs.handler.handle(logging.LogRecord("runtime.health", logging.ERROR, __file__, 1, "%s",
                                              ("the store has lost its data",), None))
    record = logging.LogRecord("runtime.health", logging.ERROR, __file__, 1, "%s", ("store lost (3)",), None)
    record.collapse = True
    for _ in range(3):
        logs.handler.handle(record)
    assert logs.events() == ["the store has lost its data"] * 3 + ["store lost (3)"]
    assert "collapse" not in logs.lines()[-1], "a flag, not a field"


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_urls_are_masked_in_lines_fields_and_tracebacks(fmt: str) -> None:
    stream = io.StringIO()
    log = logging.getLogger("vigie.test.masking")
    log.addHandler(handler(fmt, stream=stream, window_s=0))
    log.propagate = False
    try:
        try:
            int("https://u:hunter2@portal.example/x?apikey=k3y")  # a library quoting the URL in its error
        except ValueError:
            log.exception("polling %s failed", "redis://:s3cret@host:6379/0",
                          extra={"source": "ods+https://p.example/d?token=t0k"})
    finally:
        log.handlers.clear()
    written = stream.getvalue()
    for secret in ("hunter2", "k3y", "s3cret", "t0k"):
        assert secret not in written
    for shown in ("redis://:***@host:6379/0", "https://u:***@portal.example/x?apikey=***", "?token=***"):
        assert shown in written
