"""The catch-up feed and subscription previews, over the stored change log (core.ports.ChangeLog, from runtime/).

    GET  /v1/changes?cursor=…&limit=…        what the tenant's subscriptions matched, oldest first, paged
    POST /v1/subscriptions/preview?days=N    how many alerts a subscription would have had (handler: api.py)

**Feed.** Each event is the CloudEvent a webhook would have carried (its `id` is the delivery's idempotency key, so
a partner that also received some by webhook dedupes them). Matching uses the tenant's subscriptions as stored,
paused and disabled ones included (a partner back from an outage catches up on what it missed). A request scans at
most `SCAN` changes of the log and returns at most `limit` events, never splitting one change's events across
pages; `next_cursor` resumes right after the last change it looked at, matched or not, so a page can be empty
with more to come (`more`). A cursor is opaque: the log's position, encoded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from datetime import datetime
from typing import Any

import pydantic
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core import render
from core.index import SubscriptionIndex
from core.match import concerns
from core.model import Change, Delivery, Subscription
from core.ports import ChangeLog, SubscriptionStore
from subscriptions.auth import Problem, caller_of
from subscriptions.openapi import Answer, Operation

LOG: web.AppKey[ChangeLog | None] = web.AppKey("change_log")
STORE: web.AppKey[SubscriptionStore] = web.AppKey("feed_store")
SCAN = 5000  # changes looked at per feed request
READ = 500  # changes read from the log at a time
PREVIEW_SCAN = 200_000  # changes looked at per preview
EXAMPLES = 5
_PREFIX = "v1."


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, min_length=1, max_length=200,
                               description="next_cursor of the previous page")
    limit: int = Field(default=100, ge=1, le=500)


class FeedPage(BaseModel):
    events: list[dict[str, Any]] = Field(description="CloudEvents, as webhooks carry them, oldest first")
    next_cursor: str | None = Field(description="where the next request resumes (null: the log is empty)")
    more: bool = Field(description="true when the log holds more after next_cursor now")
    scanned: int = Field(description="changes of the log looked at for this page")


class PreviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(default=7, ge=1, le=30)


class PreviewOut(BaseModel):
    days: int
    since: datetime
    alerts: int = Field(description="alerts this subscription would have received")
    examples: list[dict[str, Any]] = Field(description="up to 5 of them, most recent first, as CloudEvents")
    complete: bool = Field(description="false when the period held more changes than a preview looks at")


def encode(position: str) -> str:
    return _PREFIX + base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _position(cursor: str) -> str | None:
    if not cursor.startswith(_PREFIX):
        return None
    raw = cursor.removeprefix(_PREFIX)
    try:
        position = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return position if position and all(ch.isdigit() or ch == "-" for ch in position) else None


def decode(cursor: str) -> str:
    """The log position a cursor names; 400 on the field for anything this API did not hand out."""
    position = _position(cursor)
    if position is None:
        raise Problem(400, "Invalid Query", "cursor: not a cursor this API handed out",
                      errors=[{"field": "cursor", "message": "not a cursor this API handed out"}])
    return position


async def _tenant_index(request: web.Request) -> SubscriptionIndex:
    tenant = caller_of(request).tenant
    mine = [replace(s, paused=False, disabled_reason=None)
            for s in await request.app[STORE].all() if s.owner == tenant]
    return SubscriptionIndex(mine)


def _events(change: Change, matched: list[Subscription]) -> list[dict[str, Any]]:
    return [render.cloudevent(Delivery.of(change, s)) for s in sorted(matched, key=lambda s: s.id)]


async def changes(request: web.Request) -> web.Response:
    try:
        query = FeedQuery.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        raise Problem(400, "Invalid Query", "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                      errors=errors) from exc
    position = None if query.cursor is None else decode(query.cursor)
    log, index = request.app[LOG], await _tenant_index(request)
    page = FeedPage(events=[], next_cursor=query.cursor, more=False, scanned=0)
    if log is not None:
        page = await _page(log, index, position, query.limit, page)
    return web.json_response(page.model_dump(mode="json"))


async def _page(log: ChangeLog, index: SubscriptionIndex, position: str | None, limit: int,
                page: FeedPage) -> FeedPage:
    """Read the log after `position` until `limit` events, SCAN changes, or its end."""
    while page.scanned < SCAN:
        want = min(READ, SCAN - page.scanned)
        batch = await log.after(position, want)
        for (at, change), matched in zip(batch, index.match_many([c for _, c in batch]), strict=True):
            events = _events(change, matched)
            if page.events and len(page.events) + len(events) > limit:
                page.more = True
                return page
            page.events += events
            page.scanned += 1
            position, page.next_cursor = at, encode(at)
            if len(page.events) >= limit:
                page.more = bool(await log.after(position, 1))
                return page
        if len(batch) < want:
            return page  # the end of the log
    page.more = bool(await log.after(position, 1))
    return page


async def preview_of(log: ChangeLog | None, subscription: Subscription, since: datetime, days: int) -> PreviewOut:
    """What `subscription` would have matched since `since` (the exact test, core.match.concerns)."""
    found = [] if log is None else await log.since(since, PREVIEW_SCAN + 1)
    complete = len(found) <= PREVIEW_SCAN
    matched = [change for change in found[:PREVIEW_SCAN] if concerns(subscription, change)]
    examples = [render.cloudevent(Delivery.of(change, subscription)) for change in reversed(matched[-EXAMPLES:])]
    return PreviewOut(days=days, since=since, alerts=len(matched), examples=examples, complete=complete)


OPERATIONS = (
    Operation("GET", "/v1/changes", changes, "catch up: what the tenant's subscriptions matched", "read",
              {200: Answer("a page of events and the cursor to continue from", FeedPage)}, query=FeedQuery,
              problems=(400,)),
)


def install(app: web.Application, store: SubscriptionStore, log: ChangeLog | None) -> None:
    app[LOG], app[STORE] = log, store
