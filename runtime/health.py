"""What a running role says is wrong with it, for `vigie healthcheck`: a problems file next to its heartbeat.

A heartbeat says the process is alive; it cannot say that a part of it gave up or keeps failing (the streams
role's current-state view updater while Redis is away, say). A part reports a problem by name while it lasts and
clears it when it is over; the role's `<data dir>/<role>.problems` file holds the current ones as JSON (it is
removed when there are none), and the healthcheck fails while it names any.

    problems = Problems(Path("vigie-data/streams.problems"))
    problems.report("view", "current-state view updater failing (ConnectionError …)")
    problems.report("view", None)  # over

`watch_store` is the streams role's check that its Redis did not come back empty (see core.errors.StoreLost).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.errors import StoreLost

if TYPE_CHECKING:
    from runtime.distributed import DistributedSettings

HEARTBEAT_S = 5.0  # a role writes its heartbeat this often; 12 missed ones make it unhealthy

log = logging.getLogger(__name__)


class Problems:
    """The problems of one role process, written to `path` on every change (small, rare writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._current: dict[str, str] = {}
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a previous run's problems are not this one's

    @property
    def current(self) -> dict[str, str]:
        return dict(self._current)

    def report(self, part: str, problem: str | None) -> None:
        """`part` has `problem` now (a line), or none (None)."""
        if self._current.get(part) == problem:
            return
        if problem is None:
            self._current.pop(part, None)
        else:
            self._current[part] = problem
        self._write()

    def reporter(self, part: str) -> Callable[[str | None], None]:
        """A callback reporting for `part` (what a component is given, so it needs no name of its own)."""
        return functools.partial(self.report, part)

    def _write(self) -> None:
        if not self._current:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self._current, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, self.path)  # the healthcheck never reads half a file


def read_problems(path: Path) -> list[str]:
    """The problems a role's file names, as `part: problem` lines; [] when there is no file."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        return [f"unreadable problems file {path}: {exc}"]
    if not isinstance(found, dict):
        return [f"unreadable problems file {path}: not an object"]
    return [f"{part}: {problem}" for part, problem in sorted(found.items())]


class LosableStore(Protocol):
    async def lost(self) -> bool: ...


async def check_store(store: LosableStore, expected: int, report: Callable[[str | None], None]) -> str | None:
    """One check: when `expected` subscriptions exist (the compacted topic's count, say) but the store has lost its
    data, say so loudly (one error line, collapsed per window) and report it; else clear the report."""
    try:
        lost = expected > 0 and await store.lost()
    except Exception as exc:  # Redis away: the roles' own errors say so; this check says nothing new
        log.debug("cannot check the subscription store: %r", exc)
        lost = False
    problem = str(StoreLost(f"({expected} subscription(s) on the topic)")) if lost else None
    report(problem)
    if problem is not None:
        log.error("%s", problem, extra={"collapse": True})
    return problem


async def watch_store(store: LosableStore, expected: Callable[[], int], report: Callable[[str | None], None],
                      stop: asyncio.Event, *, every_s: float = 30.0) -> None:
    """`check_store` every `every_s` until `stop`."""
    while not stop.is_set():
        await check_store(store, expected(), report)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


# -- `vigie healthcheck` ----------------------------------------------------------------------------------


async def health(s: DistributedSettings, role: str, channel: str | None = None) -> list[str]:
    """What is wrong for `role`, empty when healthy: broker metadata, Redis PING, the role's heartbeat age."""
    from aiokafka import AIOKafkaClient  # noqa: PLC0415 - the probe only
    from redis.asyncio import Redis  # noqa: PLC0415

    problems: list[str] = []
    client = AIOKafkaClient(bootstrap_servers=s.bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(client.bootstrap(), 10)
    except Exception as exc:  # any failure means unhealthy, reported as such
        problems.append(f"kafka {s.bootstrap}: {exc!r}")
    finally:
        await client.close()
    redis = Redis.from_url(s.redis_url, socket_timeout=5)
    try:
        await redis.ping()
    except Exception as exc:  # any failure means unhealthy
        problems.append(f"redis: {exc!r}")
    finally:
        await redis.aclose()
    return problems + _stale(s, role, channel)


def _stale(s: DistributedSettings, role: str, channel: str | None) -> list[str]:
    if role == "api":
        return []
    name = f"notifier-{channel}" if role == "notifier" and channel else role
    paths = [s.heartbeat(name)] if role != "notifier" or channel else sorted(Path(s.data_dir).glob("notifier-*.alive"))
    ages = [time.time() - p.stat().st_mtime for p in paths if p.exists()]
    if not ages:
        return [f"no heartbeat from the {role} role in {s.data_dir}"]
    if min(ages) > 12 * HEARTBEAT_S:
        return [f"{role} heartbeat is {min(ages):.0f}s old"]
    return [problem for path in paths for problem in read_problems(path.with_suffix(".problems"))]
