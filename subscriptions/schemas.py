"""Subscription input as people type it (CLI, REST, bots), validated with pydantic at the edge.

`SubscriptionIn.to_subscription(id)` is the only way in: it gives a core Subscription or raises
pydantic.ValidationError with one precise message per bad field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import SubscriptionError
from core.filters import from_json, to_json
from core.geo import AdminArea, Area, BBox, Circle, Everywhere, Point, Polygon
from core.model import Filter, Kind, Subscription
from core.schedule import DEFAULT_TIMEZONE, parse_digest, parse_quiet, quiet_text, zone
from core.where import parse as parse_where

T = TypeVar("T")

KINDS = frozenset(k.value for k in Kind)
_DISTANCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km|m)?\s*$", re.IGNORECASE)
AREA_FIELDS = ("near", "commune", "postcode", "departement", "region", "bbox", "polygon", "everywhere")


def parse_distance(value: str | float) -> float:
    """'1km', '1.5 km', '800m', '800' (metres) → metres."""
    if isinstance(value, int | float):
        return float(value)
    match = _DISTANCE.match(value)
    if not match:
        raise ValueError(f"not a distance: {value!r} (try 500m or 1.5km)")
    number, unit = float(match.group(1)), (match.group(2) or "m").lower()
    return number * 1000 if unit == "km" else number


def parse_latlon(value: str | list[float] | tuple[float, float]) -> tuple[float, float]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise ValueError(f"expected LAT,LON, got {value!r}")
    lat, lon = float(parts[0]), float(parts[1])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"coordinates out of range: {lat},{lon}")
    return lat, lon


def _buildable(make: Callable[[], Area]) -> None:
    """ValueError (a pydantic error on the field) when the area cannot be built."""
    try:
        make()
    except (SubscriptionError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc


def _checked(read: Callable[[], T]) -> T:
    """A core reading (schedule, filter), its SubscriptionError as a pydantic error on the field."""
    try:
        return read()
    except SubscriptionError as exc:
        raise ValueError(str(exc)) from exc


class SubscriptionIn(BaseModel):
    """Exactly one area (near+radius, an admin code, bbox, polygon or everywhere) and a destination."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: Annotated[str, Field(min_length=3, description="destination URL: console://, webhook+https://, slack://")]
    near: tuple[float, float] | None = None
    radius_m: float | None = Field(default=None, gt=0, le=100_000)
    commune: Annotated[str, Field(pattern=r"^(\d{5}|2[AB]\d{3})$")] | None = None
    postcode: Annotated[str, Field(pattern=r"^\d{5}$")] | None = None
    departement: Annotated[str, Field(pattern=r"^(\d{2}|2[AB]|97\d)$")] | None = None
    region: Annotated[str, Field(pattern=r"^\d{2}$")] | None = None
    bbox: tuple[float, float, float, float] | None = None
    polygon: dict[str, Any] | None = None
    everywhere: bool = False
    rating_at_least: int | None = Field(default=None, ge=1, le=4)
    rating_at_most: int | None = Field(default=None, ge=1, le=4, description="only results rated N or better")
    kinds: frozenset[str] = frozenset()
    datasets: frozenset[str] = frozenset()
    activities: frozenset[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default=frozenset(), max_length=50, description="activity types, e.g. Restaurant (case and accents ignored)")
    where: dict[str, Any] | None = Field(default=None, description=(
        "field conditions, as text (rating >= 3 and name contains \"pizza\") or JSON ({\"field\": …, \"eq\": …}, "
        "and/or/not): docs/matching.md"))
    lang: Literal["fr", "en"] = "fr"
    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{24,}$")] | None = None
    label: str = Field(default="", max_length=200)
    digest: int | str | None = Field(default=None, description="hours between digests: 6h (1 to 24); none: at once")
    quiet: str = Field(default="", description="quiet hours such as 22:00-07:00 (urgent alerts go anyway)")
    timezone: str = DEFAULT_TIMEZONE
    batch: bool = Field(default=False, description=(
        "webhooks only: what is due goes out together, one signed application/cloudevents-batch+json POST"))

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: int | str | None) -> int:
        return _checked(lambda: parse_digest(value))

    @field_validator("quiet")
    @classmethod
    def _quiet(cls, value: str) -> str:
        return _checked(lambda: quiet_text(parse_quiet(value)))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _checked(lambda: zone(value).key)

    @field_validator("where", mode="before")
    @classmethod
    def _where(cls, value: Any) -> dict[str, Any] | None:
        """Text or JSON in, the JSON form (core/filters.py) kept; one message naming the bad node otherwise."""
        if value is None:
            return None
        if isinstance(value, str):
            return to_json(_checked(lambda: parse_where(value)))
        if isinstance(value, dict):
            return to_json(_checked(lambda: from_json(value)))
        raise ValueError("expected a condition as text or as a JSON object")

    @field_validator("near", mode="before")
    @classmethod
    def _near(cls, value: Any) -> Any:
        if isinstance(value, str) or (isinstance(value, list | tuple) and len(value) == 2
                                      and all(isinstance(v, int | float) for v in value)):
            return parse_latlon(value)
        return value  # None, or not a pair of numbers: pydantic says what is wrong

    @field_validator("radius_m", mode="before")
    @classmethod
    def _radius(cls, value: Any) -> Any:
        return parse_distance(value) if isinstance(value, str) else value

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, value: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if value is not None:
            _buildable(lambda: BBox(*value))
        return value

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _buildable(lambda: Polygon.from_geojson(value))
        return value

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = sorted(value - KINDS)
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(sorted(KINDS))}")
        return value

    @model_validator(mode="after")
    def _one_area(self) -> SubscriptionIn:
        given = [name for name in AREA_FIELDS if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"give exactly one area ({', '.join(AREA_FIELDS)}), got {len(given) or 'none'}")
        if (self.near is None) != (self.radius_m is None):
            raise ValueError("near and radius go together")
        return self

    def area(self) -> Area:
        if self.near is not None and self.radius_m is not None:
            return Circle(Point(*self.near), self.radius_m)
        for level in ("commune", "postcode", "departement", "region"):
            code = getattr(self, level)
            if code:
                return AdminArea(level, code)
        if self.bbox is not None:
            return BBox(*self.bbox)
        if self.polygon is not None:
            return Polygon.from_geojson(self.polygon)
        return Everywhere()

    def to_subscription(self, subscription_id: str) -> Subscription:
        return Subscription(
            id=subscription_id, area=self.area(), destination=self.to, lang=self.lang, secret=self.secret,
            label=self.label, filter=self.filter(),
            digest_hours=int(self.digest or 0), quiet_hours=self.quiet, timezone=self.timezone, batch=self.batch,
        )

    def filter(self) -> Filter:
        where = None if self.where is None else from_json(self.where)
        return Filter(self.datasets, self.kinds, self.rating_at_least, self.rating_at_most, self.activities, where)
