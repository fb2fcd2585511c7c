"""The embedded runtime: one process, asyncio + SQLite, no broker (`vigie run`).

Each source is polled on its interval; every snapshot goes through the Processor (diff, match,
outbox, one transaction), then the OutboxWorker drains the outbox. A crash between the two
loses nothing: pending deliveries are still in the outbox at restart, with the same idempotency
keys, so receivers that dedupe see each alert once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import IO, Any

import aiohttp

from core.health import HealthRule
from core.index import SubscriptionIndex
from core.ports import Adapter, RawSnapshot, Snapshot, Source
from core.profiles import profile_for
from core.snapshots import scoped
from core.storms import MassRule
from notifiers import Channels
from notifiers.failing import EndpointWatch
from notifiers.failing_sqlite import SqliteFailures
from notifiers.outbox_sqlite import SqliteOutbox
from notifiers.ratelimit import DEFAULT_RATES, Rate, RateLimiter
from notifiers.worker import DrainResult, OutboxWorker
from producers import adapter_for, open_source
from producers.http import Downloaded, HttpSource
from producers.urls import mask as mask_source
from runtime.bots import serve_bots
from runtime.metrics import Metrics, poll_outcome
from runtime.settings import Settings
from runtime.telegram import DATASET, disabler, host_bot, telegram_options
from runtime.wiring import retry_policy, webhook_guard
from streams.held_sqlite import HeldEvent
from streams.processor import Outcome, Processor, deliveries_for
from streams.sqlite import Database, StateStore
from subscriptions.sqlite import SqliteSubscriptionStore

log = logging.getLogger(__name__)
Progress = Callable[[str, str], None]
Polled = Callable[[Outcome, float], None]  # a poll's outcome and how long it took


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Summary:
    """What `vigie run --once --json` prints as its last line."""

    changes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    deliveries: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    quarantined: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.changes.update(outcome.counts())
        self.kinds.update(outcome.kinds())
        self.deliveries += len(outcome.deliveries)
        self.quarantined += outcome.quarantined
        self.sources.append({
            "url": outcome.source, "version": outcome.version, "rows": outcome.rows, "complete": outcome.complete,
            "baseline": outcome.baseline, "unchanged": outcome.unchanged, "problem": outcome.problem,
            "held": len(outcome.held), "event": outcome.event.id if outcome.event else None,
        })

    def to_dict(self) -> dict[str, Any]:
        changes = {op: self.changes.get(op, 0) for op in ("created", "updated", "removed")}
        return {"changes": changes, "kinds": dict(sorted(self.kinds.items())), "deliveries": self.deliveries,
                "delivered": self.delivered, "failed": self.failed, "dead": self.dead,
                "quarantined": self.quarantined, "sources": self.sources}


class Embedded:
    """Wires the embedded adapters; use as `async with Embedded(settings) as vigie:`."""

    def __init__(self, settings: Settings, *, console: IO[str] | None = None, clock: Callable[[], datetime] = utcnow,
                 progress: Progress | None = None, rates: Mapping[str, Rate] = DEFAULT_RATES,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics() if metrics is None else metrics
        self._polled: list[Polled] = []
        self._rates = rates
        self.clock = clock
        self._console = console
        self._progress = progress or (lambda stage, detail: None)
        self._sources: dict[str, tuple[Source, Adapter]] = {}
        self.wake = asyncio.Event()
        self._index: tuple[int, SubscriptionIndex] | None = None  # (store revision, index of that revision)

    def on_poll(self, polled: Polled) -> None:
        """Called as `polled(outcome, seconds)` after every poll (`vigie run` prints a line)."""
        self._polled.append(polled)

    def on_progress(self, progress: Progress) -> None:
        """Called as `progress(stage, detail)` while polling and delivering (the demo's progress bar)."""
        self._progress = progress

    def on_download(self, reporter: Callable[[str], Downloaded]) -> None:
        """Every HTTP source reports its downloads' progress to `reporter(dataset)` (`vigie run`'s bars)."""
        for source, adapter in self._sources.values():
            if isinstance(source, HttpSource):
                source.report_downloads(reporter(adapter.dataset))

    async def __aenter__(self) -> Embedded:
        s = self.settings
        self.db = await Database(s.state).open()
        self.state = StateStore(self.db)
        self.outbox = SqliteOutbox(self.db)
        self.subscriptions = SqliteSubscriptionStore(s.subscription_store)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=s.http_timeout))
        self.channels = Channels(
            slack_token=s.slack_bot_token.get_secret_value() if s.slack_bot_token else None,
            slack_base_url=s.slack_api_url, console_stream=self._console, timeout=s.http_timeout,
            session=self.session, on_refused=disabler(self.subscriptions), webhook_guard=webhook_guard(s),
            **telegram_options(s),
        )
        self.processor = Processor(self.state, profiles=profile_for, min_ratio=s.min_snapshot_ratio,
                                   baseline_alerts=s.baseline_alerts,
                                   mass_rule=MassRule(s.mass_change_share, s.mass_change_minimum),
                                   health_rule=HealthRule(timedelta(seconds=s.stale_after), s.failing_after),
                                   shown=mask_source)
        watch = EndpointWatch(SqliteFailures(self.db), timedelta(seconds=s.disable_after), disabler(self.subscriptions))
        self.worker = OutboxWorker(self.outbox, self.channels, retry_policy(s), self.clock,
                                   limiter=RateLimiter(self._rates), subscriptions=self.subscriptions, endpoints=watch,
                                   observe=lambda delivery, outcome: self.metrics.delivered(delivery, outcome,
                                                                                            self.clock()))
        for url in s.sources:
            self._sources[url] = (open_source(url, session=self.session), adapter_for(url))
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        for source, _ in self._sources.values():
            await source.aclose()
        await self.channels.aclose()
        await self.session.close()
        await self.subscriptions.aclose()
        await self.db.close()

    async def poll(self, url: str) -> Outcome:
        """Fetch one source, and diff, match and enqueue in one transaction."""
        source, adapter = self._sources[url]
        known = await self.state.source(url)
        self._progress("fetch", url)
        raw = await source.fetch(known.version if known else None)
        self._progress("diff", f"{len(raw.rows)} rows")
        snapshot = self._snapshot(url, raw, adapter)
        matcher = await self.matcher()
        outcome = await self.processor.process(snapshot, matcher, at=self.clock())
        self._progress("matched", f"{len(outcome.changes)} changes, {len(outcome.deliveries)} deliveries")
        self.wake.set()
        return outcome

    @staticmethod
    def _snapshot(url: str, raw: RawSnapshot, adapter: Adapter) -> Snapshot:
        if raw.unchanged:
            return Snapshot(adapter.dataset, url, [], False, raw.version, unchanged=True)
        return scoped(url, adapter.to_snapshot(raw), raw.problem)

    async def matcher(self) -> SubscriptionIndex:
        """The match index: built once, then kept up to date with the subscriptions written since (added, changed
        or removed in place); rebuilt only when the store's log no longer reaches back to it."""
        if self._index is not None:
            built, index = self._index
            written = self.subscriptions.written_since(built)
            if written is not None:
                revision, ids = written
                for subscription_id in sorted(ids):
                    found = await self.subscriptions.get(subscription_id)
                    if found is None:
                        index.remove(subscription_id)
                    else:
                        index.add(found)
                self._index = (revision, index)
                return index
        revision = self.subscriptions.revision()
        self._index = (revision, SubscriptionIndex(await self.subscriptions.all()))
        log.debug("match index built: %d subscription(s)", len(self._index[1]), extra={"revision": revision})
        return self._index[1]

    async def release(self, event: HeldEvent) -> int:
        """Let a held dataset event's changes through to today's subscriptions; how many deliveries it queued."""
        changes = await self.state.held(event.id)
        deliveries = deliveries_for(changes, await self.matcher())
        await self.state.release(event, changes, deliveries, now=self.clock())
        self.wake.set()
        log.info("released dataset event %s: %d changes, %d deliveries queued", event.id, len(changes),
                 len(deliveries), extra={"source": event.source})
        return len(deliveries)

    async def deliver(self) -> DrainResult:
        """Drain everything that is due now; retries scheduled later stay in the outbox."""
        total = DrainResult(0, 0, 0)
        while True:
            result = await self.worker.drain()
            total = DrainResult(total.delivered + result.delivered, total.retried + result.retried,
                                total.dead + result.dead, total.dropped + result.dropped, total.held + result.held)
            if result.delivered + result.retried + result.dead + result.dropped + result.held == 0:
                return total
            self._progress("deliver", f"{total.delivered} delivered")

    async def run_once(self) -> Summary:
        summary = Summary()
        for url in self._sources:
            summary.add(await self._observed_poll(url))
        result = await self.deliver()
        summary.delivered, summary.failed, summary.dead = result.delivered, result.retried, result.dead
        return summary

    async def _observed_poll(self, url: str) -> Outcome:
        """`_poll_safely`, counted in the metrics and told to the `on_poll` listeners."""
        started = time.monotonic()
        outcome = await self._poll_safely(url)
        seconds = time.monotonic() - started
        state = poll_outcome(problem=outcome.problem, complete=outcome.complete, unchanged=outcome.unchanged)
        self.metrics.polled(url, self._sources[url][1].dataset, state, rows=outcome.rows,
                            quarantined=outcome.quarantined, ops=outcome.counts(), kinds=outcome.kinds(),
                            at=self.clock())
        for polled in self._polled:
            polled(outcome, seconds)
        return outcome

    async def _poll_safely(self, url: str) -> Outcome:
        try:
            return await self.poll(url)
        except Exception as exc:  # a broken source must not stop the others
            log.exception("polling %s failed", url)
            problem = f"{type(exc).__name__}: {exc}"
            matcher = await self.matcher()
            return await self.processor.failed(url, self._sources[url][1].dataset, problem, matcher, at=self.clock())

    async def run_forever(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tasks:
            for url in self._sources:
                tasks.create_task(self._poll_loop(url, stop))
            tasks.create_task(self._deliver_loop(stop))
            if self.settings.telegram_bot_token is not None:  # the chatbot, on this runtime's store and view
                view = await self.processor.view(DATASET)
                tasks.create_task(host_bot(self.settings, self.subscriptions, view, stop))
            if self.settings.slack_signing_secret is not None:  # the /vigie slash command, on the same store
                tasks.create_task(serve_bots(self.settings, self.subscriptions, stop))

    async def _poll_loop(self, url: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._observed_poll(url)
            await _wait(stop, self.settings.poll_interval)

    async def _deliver_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.deliver()
            self.wake.clear()
            await _wait_any(stop, self.wake, self.settings.delivery_interval)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
