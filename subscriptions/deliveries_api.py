"""Dead letters in the REST API, scoped to the caller's tenant (core.ports.DeadLetters, injected by runtime/).

    GET  /v1/deliveries/dead             the tenant's dead letters, most recent first
    POST /v1/deliveries/{id}/replay      queue one again (a first attempt, due now); 404 for another tenant's

A dead letter belongs to the tenant owning its subscription; one whose subscription was deleted is nobody's.
"""

from __future__ import annotations

from aiohttp import web

from core.ports import DeadLetter, DeadLetters, SubscriptionStore
from subscriptions.auth import Problem, caller_of
from subscriptions.models import DeadLetterOut, Replayed
from subscriptions.openapi import Answer, Operation

DEAD: web.AppKey[DeadLetters | None] = web.AppKey("dead_letters")
STORE: web.AppKey[SubscriptionStore] = web.AppKey("deliveries_store")


async def _mine(request: web.Request) -> list[DeadLetter]:
    dead = request.app[DEAD]
    if dead is None:
        return []
    tenant, store, owners = caller_of(request).tenant, request.app[STORE], {}
    mine = []
    for letter in await dead.dead():
        if letter.subscription_id not in owners:
            found = await store.get(letter.subscription_id)
            owners[letter.subscription_id] = None if found is None else found.owner
        if owners[letter.subscription_id] == tenant:
            mine.append(letter)
    return mine


def _out(letter: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(id=letter.key, subscription_id=letter.subscription_id, channel=letter.channel,
                         change_id=letter.change_id, kind=letter.kind, attempts=letter.attempts, reason=letter.reason)


async def dead_letters(request: web.Request) -> web.Response:
    return web.json_response([_out(letter).model_dump() for letter in await _mine(request)])


async def replay(request: web.Request) -> web.Response:
    key, dead = request.match_info["id"], request.app[DEAD]
    if dead is None or all(letter.key != key for letter in await _mine(request)) or not await dead.replay(key):
        raise Problem(404, "Not Found", f"no dead letter {key}")
    return web.json_response(Replayed(id=key, status="queued").model_dump(), status=202)


OPERATIONS = (
    Operation("GET", "/v1/deliveries/dead", dead_letters, "the tenant's dead letters", "read",
              {200: Answer("deliveries given up on, most recent first", DeadLetterOut, many=True)}),
    Operation("POST", "/v1/deliveries/{id}/replay", replay, "send a dead letter again", "write",
              {202: Answer("queued again, as a first attempt due now", Replayed)}, problems=(404,)),
)


def install(app: web.Application, store: SubscriptionStore, dead: DeadLetters | None) -> None:
    app[DEAD], app[STORE] = dead, store
