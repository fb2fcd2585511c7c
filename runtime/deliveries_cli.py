"""`vigie deliveries dead|replay` and `vigie subscriptions rotate`: the delivery lifecycle from the command line.

    vigie deliveries dead [--json]          dead letters (every tenant's), most recent first
    vigie deliveries replay ID | --all      queue dead letters again, as first attempts due now
    vigie subscriptions rotate ID           a new webhook secret (printed once); the old one keeps signing
                                            for VIGIE_WEBHOOK_SECRET_OVERLAP seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from core.errors import PublishError
from core.ports import DeadLetter
from notifiers import new_secret
from runtime.deliveries import dead_letters
from runtime.settings import Settings
from runtime.wiring import subscription_store
from subscriptions.lifecycle import rotated

out = Console()
err = Console(stderr=True)
SettingsOf = Callable[[argparse.Namespace], Settings]


async def _dead(settings: Settings, limit: int) -> list[DeadLetter]:
    async with dead_letters(settings) as dead:
        return await dead.dead(limit)


async def _replay(settings: Settings, keys: list[str] | None) -> tuple[int, list[str]]:
    """How many were queued again, and the keys not found (`keys` None: every dead letter)."""
    async with dead_letters(settings) as dead:
        wanted = keys if keys is not None else [letter.key for letter in await dead.dead()]
        missing = [key for key in wanted if not await dead.replay(key)]
    return len(wanted) - len(missing), missing


def cmd_dead(args: argparse.Namespace, settings: Settings) -> int:
    letters = asyncio.run(_dead(settings, args.limit))
    if args.json:
        sys.stdout.write(json.dumps([{"id": letter.key} | {k: v for k, v in asdict(letter).items() if k != "key"}
                                     for letter in letters]) + "\n")
        return 0
    table = Table("id", "subscription", "channel", "kind", "attempts", "reason", title=f"{len(letters)} dead letter(s)")
    for letter in letters:
        table.add_row(letter.key, letter.subscription_id, letter.channel, letter.kind, str(letter.attempts),
                      letter.reason)
    out.print(table)
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.id) == args.all:
        err.print("[red]give a dead letter's id, or --all[/]")
        return 2
    queued, missing = asyncio.run(_replay(settings, None if args.all else [args.id]))
    for key in missing:
        err.print(f"[red]no dead letter {key}[/]")
    out.print(f"queued {queued} dead letter(s) again")
    return 1 if missing else 0


async def _rotate(settings: Settings, sid: str) -> tuple[str | None, datetime | None, PublishError | None]:
    store = subscription_store(settings)
    try:
        current = await store.get(sid)
        if current is None:
            return None, None, None
        changed = rotated(current, new_secret(), now=datetime.now(UTC),
                          overlap=timedelta(seconds=settings.webhook_secret_overlap))
        try:
            await store.put(changed)
        except PublishError as exc:  # stored; published with the other pending writes
            return changed.secret, changed.previous_until, exc
        return changed.secret, changed.previous_until, None
    finally:
        await store.aclose()


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        secret, until, unpublished = asyncio.run(_rotate(settings, args.id))
    except ValueError as exc:
        err.print(f"[red]not rotated[/]: {exc}")
        return 2
    if secret is None:
        err.print(f"[red]no subscription {args.id}[/]")
        return 1
    out.print("new webhook secret (shown once, keep it to verify signatures):")
    sys.stdout.write(secret + "\n")
    if until is not None:
        out.print(f"the previous secret signs too until {until.isoformat(timespec='seconds')}")
    if unpublished is not None:
        err.print(f"[yellow]stored, not yet published[/] ({unpublished})")
    return 0


def _bind(parser: argparse.ArgumentParser, command: Callable[[argparse.Namespace, Settings], int],
          settings_of: SettingsOf) -> None:
    parser.set_defaults(func=lambda args: command(args, settings_of(args)))


def add_parsers(sub: Any, subscriptions: Any, settings_of: SettingsOf) -> None:
    """`deliveries` under the root parser `sub`; `rotate` under the `subscriptions` actions."""
    deliveries = sub.add_parser("deliveries", help="dead letters: list and replay")
    actions = deliveries.add_subparsers(dest="action", required=True)
    dead = actions.add_parser("dead", help="deliveries given up on, most recent first")
    dead.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    dead.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    _bind(dead, cmd_dead, settings_of)
    replay = actions.add_parser("replay", help="send dead letters again (a first attempt, due now)")
    replay.add_argument("id", nargs="?", help="a dead letter's id (its delivery key)")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    _bind(replay, cmd_replay, settings_of)
    rotate = subscriptions.add_parser("rotate", help="a new webhook signing secret (the old one overlaps)")
    rotate.add_argument("id", help="the subscription's id")
    _bind(rotate, cmd_rotate, settings_of)
