"""`vigie subscriptions list`: the table and the JSON listing (a documented, stable format: docs/operations.md).

The JSON listing keeps every key it had (id, destination, area, kinds, min_rating, lang, paused, disabled_reason)
and adds one flat key per field a user may set, named as the API names them (label, datasets, rating_at_most,
activities, where in its JSON form, digest, quiet, timezone, batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from core.codec import area_to_dict
from core.filters import to_json
from core.model import Subscription
from core.schedule import timing
from core.where import summary


def listed(subscription: Subscription, mask: Callable[[str], str]) -> dict[str, Any]:
    """One subscription as `vigie subscriptions list --json` prints it: never a secret, the destination masked."""
    f = subscription.filter
    data: dict[str, Any] = {
        "id": subscription.id, "destination": mask(subscription.destination), "area": area_to_dict(subscription.area),
        "kinds": sorted(f.kinds), "min_rating": f.min_rating, "lang": subscription.lang,
        "paused": subscription.paused, "disabled_reason": subscription.disabled_reason,
        "label": subscription.label, "datasets": sorted(f.datasets), "rating_at_most": f.max_rating,
        "activities": sorted(f.activities), "where": None if f.where is None else to_json(f.where),
        "digest": subscription.digest_hours or None, "quiet": subscription.quiet_hours,
        "timezone": subscription.timezone, "batch": subscription.batch}
    return data


def describe_area(subscription: Subscription) -> str:
    area = area_to_dict(subscription.area)
    kind = str(area.pop("type"))
    if kind == "circle":
        return f"{area['radius_m']:g} m around {area['lat']:.5f},{area['lon']:.5f}"
    if kind == "admin":
        return f"{area['level']} {area['code']}"
    return kind


def describe_status(subscription: Subscription) -> str:
    if subscription.disabled_reason:
        return f"[red]disabled[/]: {subscription.disabled_reason}"
    return "[yellow]paused[/]" if subscription.paused else "active"


def describe_filter(subscription: Subscription) -> str:
    """Kinds, ratings at least/at most, activities and the where condition, then datasets when limited."""
    datasets = sorted(subscription.filter.datasets)
    text = summary(subscription.filter)
    return f"{text}; datasets {', '.join(datasets)}" if datasets else text


def describe_timing(subscription: Subscription) -> str:
    """`at once`, `digest every 6h, quiet 22:00-07:00 (Europe/Paris)`, then `; batched` for batch webhooks."""
    return timing(subscription) + ("; batched" if subscription.batch else "")


def table(subscriptions: list[Subscription], mask: Callable[[str], str]) -> Table:
    grid = Table("id", "where", "filter", "when", "destination", "lang", "status",
                 title=f"{len(subscriptions)} subscription(s)")
    for s in subscriptions:
        label = f"\n{s.label}" if s.label else ""
        grid.add_row(s.id + label, describe_area(s), describe_filter(s), describe_timing(s), mask(s.destination),
                     s.lang, describe_status(s))
    return grid
