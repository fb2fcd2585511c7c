"""`vigie tenants add|list|revoke`: tenants' API keys, in the store next to the subscriptions.

    vigie tenants add booking [--scopes read,write]   issue a key for tenant `booking` (printed once, never again)
    vigie tenants list [--json]                        every key: id, tenant, scopes, created, revoked
    vigie tenants revoke KEY_ID                        the key stops working at once, on every API replica
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from runtime.settings import Settings
from runtime.wiring import key_store
from subscriptions.keys import ApiKey, issue

out = Console()
err = Console(stderr=True)
SettingsOf = Callable[[argparse.Namespace], Settings]


async def add_key(settings: Settings, tenant: str, scopes: list[str]) -> tuple[str, ApiKey]:
    key, stored = issue(tenant, scopes, at=datetime.now(UTC))
    keys = key_store(settings)
    try:
        await keys.add(stored)
    finally:
        await keys.aclose()
    return key, stored


async def _all(settings: Settings) -> list[ApiKey]:
    keys = key_store(settings)
    try:
        return await keys.all()
    finally:
        await keys.aclose()


async def _revoke(settings: Settings, key_id: str) -> bool:
    keys = key_store(settings)
    try:
        return await keys.revoke(key_id)
    finally:
        await keys.aclose()


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        key, stored = asyncio.run(add_key(settings, args.name, args.scopes.split(",")))
    except ValueError as exc:
        err.print(f"[red]not added[/]: {exc}")
        return 2
    out.print(f"tenant [bold]{stored.tenant}[/]: key {stored.id} ({', '.join(sorted(stored.scopes))})")
    out.print("API key (shown once, send it as Authorization: Bearer …):")
    sys.stdout.write(key + "\n")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = asyncio.run(_all(settings))
    if args.json:
        sys.stdout.write(json.dumps([{k: v for k, v in key.to_dict().items() if k != "digest"} for key in keys])
                         + "\n")
        return 0
    table = Table("key id", "tenant", "scopes", "created", "status", title=f"{len(keys)} API key(s)")
    for key in keys:
        table.add_row(key.id, key.tenant, ",".join(sorted(key.scopes)), key.created_at[:19],
                      "[red]revoked[/]" if key.revoked else "active")
    out.print(table)
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    if not asyncio.run(_revoke(settings, args.key_id)):
        err.print(f"[red]no active key {args.key_id}[/]")
        return 1
    out.print(f"revoked {args.key_id}")
    return 0


def add_parser(sub: Any, settings_of: SettingsOf) -> None:
    tenants = sub.add_parser("tenants", help="tenants' API keys for the REST API")
    actions = tenants.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="issue an API key for a tenant (printed once)")
    add.add_argument("name", help="tenant name: a-z 0-9 _ . -")
    add.add_argument("--scopes", default="read,write", help="read, write or read,write (default)")
    listing = actions.add_parser("list", help="every key, never the key itself")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the key's id (from `vigie tenants list`)")
    for parser, command in ((add, cmd_add), (listing, cmd_list), (revoke, cmd_revoke)):
        parser.set_defaults(func=lambda args, command=command: command(args, settings_of(args)))
