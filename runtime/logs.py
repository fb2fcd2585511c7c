"""Logging, configured once here: stdlib loggers everywhere, rendered by structlog (console or JSON).

Libraries log with `logging.getLogger(__name__)`, lazy %-args and context in `extra=`; the
formatter below turns those extras into structured fields.

Kafka's client libraries (aiokafka, faust, mode) log every failed reconnect: a broker outage writes
thousands of lines a second. `Repeats` collapses them: per logger, level and message template (digits
aside, for the libraries that log f-strings), the first line of a window is written, the repeats are
counted, and when the window ends one line says `… repeated N times in the last Xs`.

Our own loggers repeat too when Redis or the broker is away (every partition of every consumer retries each
second). Any record whose exception is an outage (`OUTAGE`: connection refused or reset, a timeout, Redis's
and Kafka's connection errors, any error that says it is `retriable`) loses its traceback, which says nothing
an outage does not, for an `error` field (`ConnectionError: Error 111 connecting to …`), and collapses per
logger, level, template and exception type with a burst of one: one line per failure kind per window. A
record logged with `extra={"collapse": True}` (a loud error a role repeats while a problem lasts) collapses
the same way. Tracebacks that remain are plain text: never the local variables (they may hold secrets).

Every URL in a line, its fields and its traceback is masked (core.urls.mask_text): a password or an `apikey=` that
a library quotes in an error never reaches the log.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import structlog

from core.urls import mask_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "collapse"}
NOISY = ("aiokafka", "faust", "mode")
REPEAT_WINDOW_S = 10.0
REPEAT_BURST = 5  # lines of one template written as they come in a window, before the rest are counted
_DIGITS = re.compile(r"\d+")

Clock = Callable[[], float]
Schedule = Callable[[float, Callable[[], None]], object]
Key = tuple[str, int, str]


def _outage_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [OSError, TimeoutError]
    with contextlib.suppress(ImportError):  # the distributed extras
        from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
        from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415

        found += [RedisConnectionError, RedisTimeoutError]
    with contextlib.suppress(ImportError):
        from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415

        found.append(KafkaConnectionError)
    return tuple(found)


OUTAGE = _outage_types()


def outage(exc: BaseException | None) -> bool:
    """True for the errors of a service that is away (and may come back): a traceback adds nothing to them."""
    return exc is not None and (isinstance(exc, OUTAGE) or getattr(exc, "retriable", False) is True)


def _strip_outage(record: logging.LogRecord) -> str | None:
    """When `record` carries an outage, replace its traceback by an `error` field; the exception type's name."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None or not outage(exc):
        return None
    record.__dict__["error"] = f"{type(exc).__name__}: {exc}"
    record.exc_info, record.exc_text = None, None
    return type(exc).__name__


def _extras(logger: object, name: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    record = event.get("_record")
    if isinstance(record, logging.LogRecord):
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                event.setdefault(key, value)
    return event


def _masked(logger: object, name: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    for key, value in event.items():
        if isinstance(value, str) and "://" in value:
            event[key] = mask_text(value)
    return event


def _masked_traceback(sio: TextIO, exc_info: structlog.typing.ExcInfo) -> None:
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(mask_text(buffer.getvalue()))


def _timer(delay_s: float, callback: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(delay_s, callback)
    timer.daemon = True
    timer.start()
    return timer


@dataclass(slots=True)
class _Run:
    """One key's window: when it opened, how many repeats were held back, the latest of them."""

    start: float
    written: int = 1
    count: int = 0
    last: logging.LogRecord | None = None


class Repeats(logging.Filter):
    """A handler filter: within `window_s`, the first `burst` records of one template of the `loggers` (and their
    children) are written, later repeats are counted, not written; the count is written as one summary line when
    the window ends, before whatever comes next. A rebalance's few lines pass as they are; a reconnect flood does not.

    A window ends when a record arrives after it (any record through the handler), or when the timer that
    `schedule(delay_s, callback)` arms fires, or when the handler closes. `clock` and `schedule` are there
    for tests; a summary record carries `repeated` (the count) and `seconds` (the span) as extras.
    """

    def __init__(self, handler: logging.Handler, *, window_s: float = REPEAT_WINDOW_S, burst: int = REPEAT_BURST,
                 loggers: tuple[str, ...] = NOISY, clock: Clock = time.monotonic, schedule: Schedule = _timer) -> None:
        super().__init__()
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._handler = handler
        self._window = window_s
        self._burst = burst
        self._loggers = loggers
        self._clock = clock
        self._schedule = schedule
        self._runs: dict[Key, _Run] = {}  # in order of start: the expired runs are a prefix
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "repeated"):  # a summary of ours, on its way through the handler
            return True
        key, burst = self._key(record)
        now = self._clock()
        with self._lock:
            due = self._expire(now, everything=False)
            write = self._admit(key, burst, record, now) if burst else True
        self._write(due)
        return write

    def _key(self, record: logging.LogRecord) -> tuple[Key, int]:
        """Which lines count as repeats of `record`, and how many of them a window writes (0: never collapsed)."""
        failure = _strip_outage(record)
        if failure is not None or getattr(record, "collapse", False) is True:
            return (record.name, record.levelno, f"{_DIGITS.sub('#', str(record.msg))} {failure}"), 1
        key = (record.name, record.levelno, _DIGITS.sub("#", str(record.msg)))
        return key, self._burst if self._noisy(record.name) else 0

    def flush_due(self) -> None:
        """Write the summaries of the windows that ended."""
        with self._lock:
            due = self._expire(self._clock(), everything=False)
        self._write(due)

    def flush_all(self) -> None:
        """Write every pending summary now (the handler is closing)."""
        with self._lock:
            due = self._expire(self._clock(), everything=True)
        self._write(due)

    def _noisy(self, name: str) -> bool:
        return any(name == prefix or name.startswith(f"{prefix}.") for prefix in self._loggers)

    def _admit(self, key: Key, burst: int, record: logging.LogRecord, now: float) -> bool:
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = _Run(now)
            return True
        if run.written < burst:
            run.written += 1
            return True
        run.count += 1
        run.last = record
        if run.count == 1:
            self._schedule(max(0.0, run.start + self._window - now), self.flush_due)
        return False

    def _expire(self, now: float, *, everything: bool) -> list[logging.LogRecord]:
        summaries = []
        while self._runs:
            key, run = next(iter(self._runs.items()))
            if not everything and now < run.start + self._window:
                break
            del self._runs[key]
            if run.last is not None:
                summaries.append(_summary(run.last, run.count, now - run.start))
        return summaries

    def _write(self, summaries: list[logging.LogRecord]) -> None:
        for summary in summaries:
            self._handler.handle(summary)


def _summary(last: logging.LogRecord, count: int, seconds: float) -> logging.LogRecord:
    summary = logging.LogRecord(last.name, last.levelno, last.pathname, last.lineno,
                                "%s … repeated %d times in the last %.1fs", (last.getMessage(), count, seconds),
                                None, last.funcName)
    summary.__dict__.update(repeated=count, seconds=round(seconds, 3))
    return summary


class _Stream(logging.StreamHandler[TextIO]):
    """A stream handler that writes the pending repeat summaries before it closes."""

    repeats: Repeats | None = None

    def close(self) -> None:
        if self.repeats is not None:
            self.repeats.flush_all()
        super().close()


def handler(fmt: str = "console", *, stream: TextIO | None = None, window_s: float = REPEAT_WINDOW_S,
            burst: int = REPEAT_BURST, clock: Clock = time.monotonic,
            schedule: Schedule = _timer) -> logging.Handler:
    """The one handler every record goes through: rendered by structlog, library repeats beyond `burst` per
    window collapsed (`window_s` 0 keeps every line)."""
    # plain tracebacks: the default console one (rich's, when installed) prints every frame's local variables
    renderer: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, _masked, structlog.processors.JSONRenderer()] if fmt == "json"
        else [_masked, structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_masked_traceback)])
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.processors.TimeStamper(fmt="iso", utc=True), _extras],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    stream_handler = _Stream(sys.stderr if stream is None else stream)
    stream_handler.setFormatter(formatter)
    if window_s > 0:
        stream_handler.repeats = Repeats(stream_handler, window_s=window_s, burst=burst, clock=clock,
                                         schedule=schedule)
        stream_handler.addFilter(stream_handler.repeats)
    return stream_handler


def configure(level: str = "WARNING", fmt: str = "console", *, repeat_window_s: float = REPEAT_WINDOW_S) -> None:
    root = logging.getLogger()
    for previous in root.handlers:
        if isinstance(previous, _Stream):
            previous.close()
    root.handlers[:] = [handler(fmt, window_s=repeat_window_s)]
    root.setLevel(level)
