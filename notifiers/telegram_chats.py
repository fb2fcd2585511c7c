"""What the Telegram bot knows about a chat, kept to the minimum: its subscriptions, and nothing else.

Privacy rules, enforced here:

- A shared location is rounded to `PRECISION` decimals (~110 m of latitude, ~75 m of longitude in France) as
  soon as it arrives; the raw point is never stored, logged, nor put in a button (the inline buttons carry the
  rounded point), and it is forgotten once the answer is sent.
- A chat's subscriptions are those whose destination is `tg://CHAT_ID`; `/forget` deletes them all.

Pure helpers (rounding, button data, ids) plus `ChatSubscriptions`, which works on any SubscriptionStore
(SQLite or Redis: the Redis store publishes every write to the stream workers, as the REST API's writes are).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.errors import PublishError
from core.geo import AdminArea, AdminLevel, Circle, Point
from core.model import Record, Subscription, stable_hash
from core.ports import CurrentView, SubscriptionStore
from notifiers.telegram import BLOCKED, destination

log = logging.getLogger(__name__)

PRECISION = 3
RADII = (500, 1000, 2000)
SAFEST = 5
SEARCH_RADII_M = (1000.0, 3000.0)
WORST_RATING = 4
_CODE = re.compile(r"(?:(commune|postcode|code postal|cp)\s+)?(\d{5}|2[AB]\d{3})", re.IGNORECASE)


def round_point(lat: float, lon: float) -> Point:
    """The shared location as Vigie keeps it: on a ~100 m grid. ValueError when out of range."""
    return Point(round(lat, PRECISION), round(lon, PRECISION))


@dataclass(frozen=True, slots=True)
class Choice:
    """What an inline button asks for: alerts in a circle (a rounded point) or an administrative area."""

    area: Circle | AdminArea

    @classmethod
    def circle(cls, point: Point, radius_m: float) -> Choice:
        return cls(Circle(round_point(point.lat, point.lon), radius_m))

    def data(self) -> str:
        """The button's callback data (≤ 64 bytes): `c:48.857:2.352:1000` or `a:postcode:75004`."""
        if isinstance(self.area, Circle):
            center = self.area.center
            return f"c:{center.lat:.{PRECISION}f}:{center.lon:.{PRECISION}f}:{self.area.radius_m:.0f}"
        return f"a:{self.area.level}:{self.area.code}"

    @classmethod
    def parse(cls, data: str) -> Choice:
        """The choice a button carries; ValueError for anything this bot did not send."""
        kind, *parts = data.split(":")
        if kind == "c" and len(parts) == 3:
            lat, lon, radius = float(parts[0]), float(parts[1]), float(parts[2])
            if radius not in RADII:
                raise ValueError(f"unexpected radius {radius}")
            return cls(Circle(round_point(lat, lon), radius))
        if kind == "a" and len(parts) == 2 and parts[0] in ("commune", "postcode") and _CODE.fullmatch(parts[1]):
            level: AdminLevel = "commune" if parts[0] == "commune" else "postcode"
            return cls(AdminArea(level, parts[1].upper()))
        raise ValueError(f"not a button of this bot: {data!r}")


def parse_code(text: str) -> AdminArea | None:
    """`75004`, `postcode 75004` → the postcode; `commune 75104`, `2A004` → the INSEE commune; else None."""
    match = _CODE.fullmatch(text.strip())
    if match is None:
        return None
    word, code = (match.group(1) or "").lower(), match.group(2).upper()
    commune = word == "commune" or not code.isdigit()  # Corsica's 2A/2B codes are commune codes
    return AdminArea("commune" if commune else "postcode", code)


def subscription_for(chat_id: int, choice: Choice, lang: str) -> Subscription:
    """The chat's subscription for `choice`; the same choice twice gives the same id (no duplicate)."""
    key = stable_hash(str(chat_id), choice.data(), size=5)
    return Subscription(id=f"tg-{chat_id}-{key}", area=choice.area, destination=destination(chat_id), lang=lang,
                        label="telegram")


async def safest(view: CurrentView, point: Point, *, limit: int = SAFEST) -> tuple[list[tuple[Record, float]], float]:
    """The `limit` best-rated places near `point`, best rating first, then nearest; and the radius searched.

    Asks the view rating by rating: the nearest `limit` rated at most r contain the nearest of rating r that
    can still make the list, so four small queries answer it exactly.
    """
    radius = SEARCH_RADII_M[-1]
    found: dict[str, tuple[Record, float]] = {}
    for radius in SEARCH_RADII_M:
        for rating in range(1, WORST_RATING + 1):
            for record, distance in await view.near(point.lat, point.lon, radius, max_rating=rating, limit=limit):
                found.setdefault(record.entity, (record, distance))
            if len(found) >= limit:
                break
        if found:
            break
    ranked = sorted(found.values(), key=lambda item: (item[0].rating or WORST_RATING + 1, item[1], item[0].entity))
    return ranked[:limit], radius


class ChatSubscriptions:
    """A chat's subscriptions in the store: list, add, pause, resume, forget."""

    def __init__(self, store: SubscriptionStore) -> None:
        self.store = store

    async def of(self, chat_id: int) -> list[Subscription]:
        target = destination(chat_id)
        return [s for s in await self.store.all() if s.destination == target]

    async def add(self, subscription: Subscription) -> bool:
        """Store it (active), with the chat's digest and quiet hours (/digest, /quiet: they apply to the chat);
        False when the chat already had exactly this one, active."""
        known = await self.store.get(subscription.id)
        if known is not None and known.active and known.area == subscription.area:
            return False
        peers = [s for s in await self.store.all() if s.destination == subscription.destination]
        if peers:
            subscription = replace(subscription, digest_hours=peers[0].digest_hours,
                                   quiet_hours=peers[0].quiet_hours, timezone=peers[0].timezone)
        await self._put(subscription)
        return True

    async def _put(self, subscription: Subscription) -> None:
        try:
            await self.store.put(subscription)
        except PublishError:  # stored: the store keeps it pending and the bot role publishes it again
            log.warning("subscription %s stored, not yet published", subscription.id,
                        extra={"subscription_id": subscription.id})

    async def _delete(self, subscription_id: str) -> bool:
        try:
            return await self.store.delete(subscription_id)
        except PublishError:  # deleted: the tombstone is pending and published again later
            log.warning("subscription %s deleted, deletion not yet published", subscription_id,
                        extra={"subscription_id": subscription_id})
            return True

    async def _update(self, chat_id: int, change: Callable[[Subscription], Subscription]) -> list[Subscription]:
        changed = []
        for subscription in await self.of(chat_id):
            updated = change(subscription)
            if updated != subscription:
                await self._put(updated)
                changed.append(updated)
        return changed

    async def pause(self, chat_id: int) -> list[Subscription]:
        return await self._update(chat_id, lambda s: replace(s, paused=True))

    async def resume(self, chat_id: int) -> list[Subscription]:
        """Un-pause, and re-enable what was disabled because the user had blocked the bot (they are back)."""
        return await self._update(chat_id, lambda s: replace(
            s, paused=False, disabled_reason=None if s.disabled_reason == BLOCKED else s.disabled_reason))

    async def unblocked(self, chat_id: int) -> list[Subscription]:
        """Re-enable only what was disabled because the user had blocked the bot."""
        return await self._update(chat_id, lambda s: replace(s, disabled_reason=None)
                                  if s.disabled_reason == BLOCKED else s)

    async def digest(self, chat_id: int, hours: int) -> list[Subscription]:
        """Every alert of the chat grouped every `hours` hours (0: each at once)."""
        return await self._update(chat_id, lambda s: replace(s, digest_hours=hours))

    async def quiet(self, chat_id: int, window: str) -> list[Subscription]:
        """Every alert of the chat held during `window` ("22:00-07:00"; "": never)."""
        return await self._update(chat_id, lambda s: replace(s, quiet_hours=window))

    async def relabel(self, chat_id: int, lang: str) -> list[Subscription]:
        return await self._update(chat_id, lambda s: replace(s, lang=lang))

    async def forget(self, chat_id: int) -> int:
        """Delete every subscription of the chat; how many there were."""
        return sum([await self._delete(s.id) for s in await self.of(chat_id)])
