"""`vigie sources` (health of every source, and the dataset events held back) and `vigie sources release ID`.

A dataset event is a mass rewrite that the guard held (core/storms.py): its per-record updates wait until an
operator who judges them real releases them. Both runtimes: SQLite state for the embedded one, Redis for the
distributed one (streams/held_redis.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from core.urls import mask_url as mask
from runtime.embedded import Embedded
from runtime.settings import Settings
from streams.held_sqlite import HeldEvent
from streams.sqlite import Database, SourceState, StateStore

out = Console()
err = Console(stderr=True)
SettingsOf = Callable[[argparse.Namespace], Settings]


async def _embedded_state(settings: Settings) -> tuple[list[SourceState], list[HeldEvent]]:
    db = await Database(settings.state).open()
    try:
        state = StateStore(db)
        return await state.sources(), await state.events()
    finally:
        await db.close()


def _sources_json(sources: Sequence[Any], events: Sequence[HeldEvent]) -> str:
    rows = []
    for s in sources:
        row = dataclasses.asdict(s)
        row["events"] = [{**e.to_dict(), "source": mask(e.source)} for e in events if e.source == row["url"]]
        row["url"] = mask(row["url"])
        rows.append(row)
    return json.dumps(rows)


def _events_table(events: Sequence[HeldEvent]) -> Table:
    table = Table(title="dataset events: mass rewrites held back (`vigie sources release EVENT` lets them through)")
    table.add_column("event", no_wrap=True, min_width=12)
    for name in ("source", "fields rewritten", "records", "detected", "released"):
        table.add_column(name)
    for e in events:
        table.add_row(e.id[:12], mask(e.source), ", ".join(e.fields), f"{e.count:,} of {e.rows:,}", e.detected_at,
                      e.released_at or "[yellow]held[/]")
    return table


def _distributed(settings: Settings) -> bool:
    return settings.bus.startswith("kafka://")


async def _state(settings: Settings) -> tuple[Sequence[Any], list[HeldEvent]]:
    if _distributed(settings):
        from runtime.sources_distributed import distributed_state  # noqa: PLC0415 - needs the kafka,redis extras

        return await distributed_state(settings)
    return await _embedded_state(settings)


def cmd_sources(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    sources, events = asyncio.run(_state(settings_of(args)))
    if args.json:
        sys.stdout.write(_sources_json(sources, events) + "\n")
        return 0
    table = Table("source", "healthy", "version", "rows", "checked at", "problem", "incident", title="sources")
    for s in sources:
        table.add_row(mask(s.url), "yes" if s.healthy else "[red]no[/]", s.version or "", str(s.rows or ""),
                      s.checked_at or "", s.problem or "", incident_text(s))
    out.print(table)
    if events:
        out.print(_events_table(events))
    return 0


def incident_text(source: Any) -> str:
    """`failing since 2025-06-04 06:00 (5 failed polls)`: the source's open incident (core/health.py), told to its
    subscribers when it opened; they are told again when it ends."""
    if not source.incident:
        return ""
    since = (source.incident_since or "")[:16].replace("T", " ")
    failed = f" ({source.failures} failed polls)" if source.failures else ""
    return f"[red]{source.incident}[/] since {since}{failed}"


def find_event(events: Sequence[HeldEvent], wanted: str) -> HeldEvent | None:
    """The event whose id is `wanted` or starts with it (as `vigie sources` shows 12 characters)."""
    found = [e for e in events if e.id.startswith(wanted.strip().lower())] if wanted.strip() else []
    return found[0] if len(found) == 1 else None


async def _release(settings: Settings, wanted: str) -> tuple[HeldEvent | None, int]:
    if _distributed(settings):
        from runtime.sources_distributed import (  # noqa: PLC0415 - needs the kafka,redis extras
            distributed_events,
            release_distributed,
        )

        event = find_event(await distributed_events(settings), wanted)
        if event is None or event.released_at is not None:
            return event, 0
        return event, await release_distributed(settings, event)
    async with Embedded(settings) as vigie:
        event = find_event(await vigie.state.events(), wanted)
        if event is None or event.released_at is not None:
            return event, 0
        return event, await vigie.release(event)


def cmd_release(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    settings = settings_of(args)
    event, queued = asyncio.run(_release(settings, args.event))
    if event is None:
        err.print(f"vigie sources release: no dataset event {args.event!r} (the ids are in `vigie sources`)",
                  soft_wrap=True, markup=False)
        return 2
    if event.released_at is not None:
        out.print(f"dataset event {event.id[:12]} was released at {event.released_at}: nothing left to send",
                  soft_wrap=True)
        return 0
    what = f"{queued:,} changes published to the stream workers" if _distributed(settings) else \
        f"{queued:,} deliveries queued, sent by `vigie run`"
    out.print(f"released dataset event {event.id[:12]} ({', '.join(event.fields)} on {event.count:,} records): "
              f"{what}", soft_wrap=True)
    return 0


def add_parser(sub: Any, settings_of: SettingsOf) -> None:
    sources = sub.add_parser("sources", help="health of every source polled so far, and dataset events held back")
    sources.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sources.set_defaults(func=lambda args: cmd_sources(args, settings_of))
    actions = sources.add_subparsers(dest="sources_action", metavar="{release}")
    release = actions.add_parser("release", help="let the per-record updates of a held dataset event through")
    release.add_argument("event", help="the event id shown by `vigie sources` (its first characters are enough)")
    release.set_defaults(func=lambda args: cmd_release(args, settings_of))
