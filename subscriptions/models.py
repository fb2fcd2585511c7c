"""What the REST API answers and the query strings it reads, as pydantic models: the handlers build their
JSON from them and subscriptions/openapi.py describes them, so the document cannot drift from the answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from subscriptions.schemas import parse_distance


class SubscriptionOut(BaseModel):
    """A subscription as its owner sees it: the destination masked, never the secret."""

    id: str
    destination: str = Field(description="the destination URL with tokens, passwords and query values masked")
    area: dict[str, Any] = Field(description="{type: circle|admin|bbox|polygon|everywhere, …}")
    lang: str
    label: str
    kinds: list[str]
    datasets: list[str]
    rating_at_least: int | None
    rating_at_most: int | None = Field(description="only results rated N or better (none: any)")
    activities: list[str] = Field(description="activity types (empty: any); case and accents ignored")
    where: dict[str, Any] | None = Field(description="the field conditions in their JSON form (docs/matching.md)")
    paused: bool
    disabled_reason: str | None = Field(description="why Vigie stopped delivering (the endpoint refused for good)")
    digest: int | None = Field(description="hours between digests (none: each alert at once); urgent ones go at once")
    quiet: str = Field(description="quiet hours such as 22:00-07:00 (empty: none); urgent alerts go anyway")
    timezone: str = Field(description="of the digest times and quiet hours (IANA name)")
    batch: bool = Field(default=False, description="webhooks: due alerts sent together, as CloudEvents JSON batches")


class SubscriptionCreated(SubscriptionOut):
    secret: str | None = Field(default=None, description="the webhook signing secret (whsec_…), shown only here")


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="the new webhook signing secret (whsec_…), shown only here")
    previous_valid_until: datetime | None = Field(
        description="until then, deliveries carry a signature with the previous secret too (none: no overlap)")


class FieldError(BaseModel):
    field: str = Field(description="the path of the invalid field: bbox, polygon, near.0, kinds")
    message: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


class Status(BaseModel):
    status: str


class NearQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius: float = Field(default=1000, gt=0, le=50_000, description="metres, or with a unit: 800m, 1.5km")
    max_rating: int | None = Field(default=None, ge=1, le=4)
    limit: int = Field(default=20, ge=1, le=200)

    @pydantic.field_validator("radius", mode="before")
    @classmethod
    def _distance(cls, value: Any) -> Any:
        return parse_distance(value) if isinstance(value, str) else value


class Place(BaseModel):
    """A record of the current-state view (core.codec.record_to_dict), with its distance for `near`."""

    model_config = ConfigDict(extra="allow")
    dataset: str
    key: str
    group: str
    fields: dict[str, Any]
    fingerprint: str
    rating: int | None
    point: dict[str, float] | None
    admin: dict[str, str | None]
    distance_m: float | None = None


class DeadLetterOut(BaseModel):
    """A delivery Vigie gave up on (attempts exhausted, or refused for good): replay it once the endpoint works."""

    id: str = Field(description="the delivery's idempotency key (its webhook-id)")
    subscription_id: str
    channel: str
    change_id: str
    kind: str
    attempts: int
    reason: str


class Replayed(BaseModel):
    id: str
    status: str = Field(description="queued: it goes out again as a first attempt, now")
