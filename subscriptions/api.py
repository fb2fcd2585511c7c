"""The REST API (aiohttp): subscriptions for partners and apps, and the current-state lookup.

    GET    /healthz, /readyz
    POST   /v1/subscriptions                      201 (202: stored, published later), the webhook secret is
                                                  returned once, here
    GET    /v1/subscriptions[/{id}]               secrets never returned
    PATCH  /v1/subscriptions/{id}                 area, filters, pause/resume (subscriptions/lifecycle.py)
    POST   /v1/subscriptions/{id}/secret/rotate   a new webhook secret, returned once; the old one keeps signing
                                                  during the overlap (Hooks.rotation_overlap, 24 h by default)
    DELETE /v1/subscriptions/{id}                 204 (202: deleted, published later)
    GET    /v1/datasets/{dataset}/near?lat=&lon=&radius=1km&max_rating=2&limit=20
    GET    /v1/datasets/{dataset}/entities/{entity}
    GET    /v1/deliveries/dead, POST /v1/deliveries/{id}/replay    dead letters (subscriptions/deliveries_api.py)
    GET    /v1/changes?cursor=&limit=             the catch-up feed (subscriptions/feed.py)
    POST   /v1/subscriptions/preview?days=7       alerts a subscription would have had (subscriptions/feed.py)
    GET    /openapi.json                          OpenAPI 3.1, generated from OPERATIONS (subscriptions/openapi.py)

A write that is stored but could not be published to the stream workers yet (PublishError: the broker is
down) answers 202 instead of 201/204, with the same body: it is kept and published later (the API role sends
pending writes again periodically), so the client must not retry it (a retried POST would subscribe twice).

Callers are tenants with API keys (`Authorization: Bearer vk_…`, subscriptions/auth.py): a subscription
belongs to the tenant that made it, and any other tenant gets 404 for it, as if it did not exist.
Every error is `application/problem+json` (RFC 9457) with a precise `detail`, and `errors` listing
each invalid field by its path. Destination checks (including the outbound guard's) and secret generation are
injected by runtime/ (they belong to notifiers/).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
from aiohttp import web

from core.codec import area_to_dict, record_to_dict
from core.errors import PublishError, SubscriptionError
from core.filters import to_json
from core.model import Subscription
from core.ports import ChangeLog, CurrentView, DeadLetters, SubscriptionStore
from subscriptions import deliveries_api, feed
from subscriptions.auth import AUTH, PROBLEM, Auth, Problem, authenticate, caller_of, problems
from subscriptions.lifecycle import SubscriptionPatch, patched, rotated
from subscriptions.models import NearQuery, Place, SecretRotated, Status, SubscriptionCreated, SubscriptionOut
from subscriptions.openapi import Answer, Operation, document
from subscriptions.schemas import SubscriptionIn

__all__ = ["PROBLEM", "Auth", "Hooks", "Problem", "create_app"]

STORE: web.AppKey[SubscriptionStore] = web.AppKey("store")
VIEWS: web.AppKey[Mapping[str, CurrentView]] = web.AppKey("views")
HOOKS: web.AppKey[Hooks] = web.AppKey("hooks")
DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi")
DEFAULT_OVERLAP = timedelta(hours=24)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Hooks:
    """What the API needs from other packages, handed in by runtime/."""

    def __init__(self, *, check_destination: Callable[[str], Awaitable[str]], new_secret: Callable[[], str],
                 mask: Callable[[str], str], ready: Callable[[], Awaitable[bool]] | None = None,
                 rotation_overlap: timedelta = DEFAULT_OVERLAP, clock: Callable[[], datetime] = _utcnow) -> None:
        self.check_destination = check_destination  # the normalised URL, or SubscriptionError
        self.new_secret = new_secret
        self.mask = mask
        self.ready = ready
        self.rotation_overlap = rotation_overlap  # how long a rotated-out secret keeps signing
        self.clock = clock


def public(subscription: Subscription, mask: Callable[[str], str]) -> dict[str, Any]:
    return SubscriptionOut(
        id=subscription.id, destination=mask(subscription.destination), area=area_to_dict(subscription.area),
        lang=subscription.lang, label=subscription.label, kinds=sorted(subscription.filter.kinds),
        datasets=sorted(subscription.filter.datasets), rating_at_least=subscription.filter.min_rating,
        rating_at_most=subscription.filter.max_rating, activities=sorted(subscription.filter.activities),
        where=None if subscription.filter.where is None else to_json(subscription.filter.where),
        paused=subscription.paused, disabled_reason=subscription.disabled_reason,
        digest=subscription.digest_hours or None, quiet=subscription.quiet_hours,
        timezone=subscription.timezone, batch=subscription.batch).model_dump()


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Problem(415, "Unsupported Media Type", "send a JSON object with Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError as exc:
        raise Problem(400, "Malformed JSON", str(exc)) from exc
    if not isinstance(body, dict):
        raise Problem(400, "Malformed JSON", f"expected a JSON object, got {type(body).__name__}")
    return body


def invalid(exc: pydantic.ValidationError, title: str, status: int = 422) -> Problem:
    """One problem listing every invalid field by its path (`bbox`, `polygon`, `kinds`, `area.near.0`)."""
    errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
    return Problem(status, title, "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


async def _spec(body: dict[str, Any], hooks: Hooks) -> SubscriptionIn:
    try:
        spec = SubscriptionIn.model_validate(body)
        destination = await hooks.check_destination(spec.to)
    except pydantic.ValidationError as exc:
        raise invalid(exc, "Invalid Subscription") from exc
    except SubscriptionError as exc:
        raise Problem(422, "Invalid Subscription", str(exc), errors=[{"field": "to", "message": str(exc)}]) from exc
    if spec.batch and not destination.startswith("webhook"):
        message = "batches are for webhook destinations only"
        raise Problem(422, "Invalid Subscription", f"batch: {message}", errors=[{"field": "batch", "message": message}])
    secret = spec.secret or (hooks.new_secret() if destination.startswith("webhook") else None)
    return spec.model_copy(update={"to": destination, "secret": secret})


async def create(request: web.Request) -> web.Response:
    hooks = request.app[HOOKS]
    spec = await _spec(await _json_object(request), hooks)
    subscription = replace(spec.to_subscription(f"sub_{secrets.token_hex(5)}"), owner=caller_of(request).tenant)
    published = await _stored(request.app[STORE].put(subscription))
    body = public(subscription, hooks.mask) | ({"secret": subscription.secret} if subscription.secret else {})
    return web.json_response(body, status=201 if published else 202,
                             headers={"Location": f"/v1/subscriptions/{subscription.id}"})


async def preview(request: web.Request) -> web.Response:
    hooks = request.app[HOOKS]
    try:
        query = feed.PreviewQuery.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise invalid(exc, "Invalid Query", 400) from exc
    spec = await _spec(await _json_object(request), hooks)
    subscription = spec.to_subscription("sub_preview")
    since = hooks.clock() - timedelta(days=query.days)
    found = await feed.preview_of(request.app[feed.LOG], subscription, since, query.days)
    return web.json_response(found.model_dump(mode="json"))


async def _stored(write: Awaitable[None]) -> bool:
    """Run a store write; False when it is stored but not published yet (the store logged the PublishError)."""
    try:
        await write
    except PublishError:
        return False
    return True


async def listing(request: web.Request) -> web.Response:
    mask, tenant = request.app[HOOKS].mask, caller_of(request).tenant
    return web.json_response([public(s, mask) for s in await request.app[STORE].all() if s.owner == tenant])


async def owned(request: web.Request) -> Subscription:
    """The subscription named in the path if the caller's tenant owns it; 404 otherwise (never 403)."""
    sid = request.match_info["id"]
    found = await request.app[STORE].get(sid)
    if found is None or found.owner != caller_of(request).tenant:
        raise Problem(404, "Not Found", f"no subscription {sid}")
    return found


async def fetch(request: web.Request) -> web.Response:
    return web.json_response(public(await owned(request), request.app[HOOKS].mask))


async def update(request: web.Request) -> web.Response:
    current = await owned(request)
    try:
        subscription = patched(current, await _json_object(request))
    except pydantic.ValidationError as exc:
        raise invalid(exc, "Invalid Subscription") from exc
    published = await _stored(request.app[STORE].put(subscription))
    return web.json_response(public(subscription, request.app[HOOKS].mask), status=200 if published else 202)


async def rotate(request: web.Request) -> web.Response:
    current, hooks = await owned(request), request.app[HOOKS]
    now = hooks.clock()
    try:
        subscription = rotated(current, hooks.new_secret(), now=now, overlap=hooks.rotation_overlap)
    except ValueError as exc:
        raise Problem(409, "Conflict", f"{current.id}: {exc}") from exc
    published = await _stored(request.app[STORE].put(subscription))
    body = SecretRotated(id=subscription.id, secret=subscription.secret or "",
                         previous_valid_until=subscription.previous_until)
    return web.json_response(body.model_dump(mode="json"), status=200 if published else 202)


async def delete(request: web.Request) -> web.Response:
    sid = (await owned(request)).id
    try:
        existed = await request.app[STORE].delete(sid)
    except PublishError:  # raised only after a deletion (and logged by the store): the tombstone comes later
        return web.Response(status=202)
    if not existed:
        raise Problem(404, "Not Found", f"no subscription {sid}")
    return web.Response(status=204)


def _view(request: web.Request) -> CurrentView:
    dataset = request.match_info["dataset"]
    view = request.app[VIEWS].get(dataset)
    if view is None:
        raise Problem(404, "Not Found", f"no current-state view for dataset {dataset!r}")
    return view


async def near(request: web.Request) -> web.Response:
    view = _view(request)
    try:
        q = NearQuery.model_validate(dict(request.query))
    except pydantic.ValidationError as exc:
        raise invalid(exc, "Invalid Query", 400) from exc
    found = await view.near(q.lat, q.lon, q.radius, max_rating=q.max_rating, limit=q.limit)
    return web.json_response([{"distance_m": round(d, 1), **record_to_dict(r)} for r, d in found])


async def entity(request: web.Request) -> web.Response:
    record = await _view(request).get(request.match_info["entity"])
    if record is None:
        raise Problem(404, "Not Found", f"no entity {request.match_info['entity']!r} in the view")
    return web.json_response(record_to_dict(record))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[HOOKS].ready
    if ready is not None and not await ready():
        raise Problem(503, "Not Ready", "the subscription store or a view does not answer")
    return web.json_response({"status": "ready"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


_NOT_FOUND, _INVALID = (404,), (400, 404, 415, 422)
_OWN = (
    Operation("GET", "/healthz", healthz, "liveness", None, {200: Answer("alive", Status)}),
    Operation("GET", "/readyz", readyz, "readiness: the stores answer", None, {200: Answer("ready", Status)},
              problems=(503,)),
    Operation("GET", "/openapi.json", openapi, "this document", None, {200: Answer("OpenAPI 3.1")}),
    Operation("POST", "/v1/subscriptions", create, "subscribe", "write", {
        201: Answer("created; the webhook secret is in the answer, once", SubscriptionCreated, headers=("Location",)),
        202: Answer("stored, published to the stream workers later: do not retry", SubscriptionCreated,
                    headers=("Location",))}, body=SubscriptionIn, problems=_INVALID),
    Operation("POST", "/v1/subscriptions/preview", preview, "how many alerts a subscription would have had", "read",
              {200: Answer("the count over the last `days` days, with examples", feed.PreviewOut)},
              body=SubscriptionIn, query=feed.PreviewQuery, problems=_INVALID),
    Operation("GET", "/v1/subscriptions", listing, "the tenant's subscriptions", "read",
              {200: Answer("every subscription of the caller's tenant", SubscriptionOut, many=True)}),
    Operation("GET", "/v1/subscriptions/{id}", fetch, "one subscription", "read",
              {200: Answer("the subscription", SubscriptionOut)}, problems=_NOT_FOUND),
    Operation("PATCH", "/v1/subscriptions/{id}", update, "change the area, filters, or pause/resume", "write",
              {200: Answer("the subscription as it is now", SubscriptionOut),
               202: Answer("changed, published later", SubscriptionOut)}, body=SubscriptionPatch, problems=_INVALID),
    Operation("POST", "/v1/subscriptions/{id}/secret/rotate", rotate, "a new webhook signing secret", "write",
              {200: Answer("the new secret, shown only here; the previous one signs too until the time given",
                           SecretRotated),
               202: Answer("rotated, published later", SecretRotated)}, problems=(404, 409)),
    Operation("DELETE", "/v1/subscriptions/{id}", delete, "unsubscribe", "write",
              {204: Answer("deleted"), 202: Answer("deleted, published later")}, problems=_NOT_FOUND),
    Operation("GET", "/v1/datasets/{dataset}/near", near, "current records near a point, nearest first", "read",
              {200: Answer("records with their distance", Place, many=True)}, query=NearQuery,
              problems=(400, 404)),
    Operation("GET", "/v1/datasets/{dataset}/entities/{entity}", entity, "the current record of an entity", "read",
              {200: Answer("the record", Place)}, problems=_NOT_FOUND),
)

OPERATIONS = (*_OWN, *deliveries_api.OPERATIONS, *feed.OPERATIONS)


def create_app(store: SubscriptionStore, hooks: Hooks, views: Mapping[str, CurrentView] | None = None, *,
               auth: Auth, dead_letters: DeadLetters | None = None,
               change_log: ChangeLog | None = None) -> web.Application:
    app = web.Application(middlewares=[problems, authenticate], client_max_size=256 * 1024)
    app[STORE], app[HOOKS], app[VIEWS], app[AUTH] = store, hooks, dict(views or {}), auth
    deliveries_api.install(app, store, dead_letters)
    feed.install(app, store, change_log)
    app[DOCUMENT] = document(OPERATIONS)
    for op in OPERATIONS:
        app.router.add_route(op.method, op.path, op.handler)
    return app
