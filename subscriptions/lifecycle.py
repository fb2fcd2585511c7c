"""Changing a subscription after it was made: PATCH /v1/subscriptions/{id}, and rotating its webhook secret.

A patch names only what changes. Any area field replaces the whole area (one area per subscription, as at
creation); `kinds`, `datasets`, `rating_at_least`, `rating_at_most`, `activities`, `where` (null: none; null
kinds, datasets or activities: any), `lang`, `label`, `digest` (0: none), `quiet` (empty: none), `timezone` and
`batch` replace theirs; `paused` pauses or resumes (resuming also clears a `disabled_reason`: the owner says the
endpoint works again). The destination and the secret do not change here. The result is validated exactly as a
new subscription is (SubscriptionIn), so every invalid field is a 422 naming its path.

`rotated` gives a webhook subscription a new secret; the old one keeps signing (next to the new one) until the
overlap ends, so a receiver can switch secrets at any moment of it without losing a delivery.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.filters import to_json
from core.geo import AdminArea, Area, BBox, Circle, Everywhere, Polygon
from core.model import Subscription
from subscriptions.schemas import AREA_FIELDS, SubscriptionIn

_SETS = ("kinds", "datasets", "activities")  # null in a patch empties them (no restriction), as [] does


class SubscriptionPatch(BaseModel):
    """The fields a PATCH may carry (validated again, merged, as a SubscriptionIn)."""

    model_config = ConfigDict(extra="forbid")
    near: Any = None
    radius_m: Any = None
    commune: str | None = None
    postcode: str | None = None
    departement: str | None = None
    region: str | None = None
    bbox: Any = None
    polygon: dict[str, Any] | None = None
    everywhere: bool | None = None
    rating_at_least: int | None = Field(default=None, ge=1, le=4)
    rating_at_most: int | None = Field(default=None, ge=1, le=4, description="only results rated N or better")
    activities: list[str] | None = None
    where: dict[str, Any] | str | None = Field(default=None, description="field conditions as text or JSON; null: none")
    kinds: list[str] | None = None
    datasets: list[str] | None = None
    lang: str | None = None
    label: str | None = None
    paused: bool | None = None
    batch: bool | None = None
    digest: int | str | None = Field(default=None, description="hours between digests: 6h; 0: each alert at once")
    quiet: str | None = Field(default=None, description="quiet hours such as 22:00-07:00; empty: none")
    timezone: str | None = None


def area_input(area: Area) -> dict[str, Any]:
    """The SubscriptionIn fields that describe `area`."""
    if isinstance(area, Circle):
        return {"near": (area.center.lat, area.center.lon), "radius_m": area.radius_m}
    if isinstance(area, AdminArea):
        return {area.level: area.code}
    if isinstance(area, BBox):
        return {"bbox": (area.south, area.west, area.north, area.east)}
    if isinstance(area, Polygon):
        return {"polygon": area.to_geojson()}
    if isinstance(area, Everywhere):
        return {"everywhere": True}
    raise TypeError(f"unknown area {type(area).__name__}")


def as_input(subscription: Subscription) -> dict[str, Any]:
    """The subscription as SubscriptionIn fields (without its secret: patches never touch it)."""
    f = subscription.filter
    return {"to": subscription.destination, **area_input(subscription.area), "kinds": sorted(f.kinds),
            "datasets": sorted(f.datasets), "rating_at_least": f.min_rating, "lang": subscription.lang,
            "label": subscription.label, "rating_at_most": f.max_rating, "activities": sorted(f.activities),
            "where": None if f.where is None else to_json(f.where), "digest": subscription.digest_hours or None,
            "quiet": subscription.quiet_hours, "timezone": subscription.timezone,
            "batch": subscription.batch}


def patched(current: Subscription, body: dict[str, Any]) -> Subscription:
    """`current` with `body` applied; pydantic.ValidationError naming each invalid field."""
    patch = SubscriptionPatch.model_validate(body)
    given = {name: [] if body[name] is None and name in _SETS else body[name] for name in body if name != "paused"}
    merged = as_input(current)
    if any(name in given for name in (*AREA_FIELDS, "radius_m")):
        merged = {k: v for k, v in merged.items() if k not in (*AREA_FIELDS, "radius_m")}
    spec = SubscriptionIn.model_validate(merged | given)
    updated = spec.to_subscription(current.id)
    resumed = patch.paused is False
    return replace(current, area=updated.area, filter=updated.filter, lang=updated.lang, label=updated.label,
                   digest_hours=updated.digest_hours, quiet_hours=updated.quiet_hours, timezone=updated.timezone,
                   batch=updated.batch,
                   paused=current.paused if patch.paused is None else patch.paused,
                   disabled_reason=None if resumed else current.disabled_reason)


def rotated(current: Subscription, secret: str, *, now: datetime, overlap: timedelta) -> Subscription:
    """`current` signing with `secret` from now on, and with its present secret too until `now + overlap`.
    A rotation during an overlap drops the older previous secret (at most two secrets sign)."""
    if not current.secret:
        raise ValueError("only a webhook subscription has a signing secret to rotate")
    if overlap <= timedelta(0):
        return replace(current, secret=secret, previous_secret=None, previous_until=None)
    return replace(current, secret=secret, previous_secret=current.secret, previous_until=now + overlap)
