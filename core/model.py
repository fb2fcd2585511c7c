"""Domain types: Record, Change, Subscription, Delivery. Frozen, slotted, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from core.filters import Filter as Filter  # noqa: PLC0414 - re-exported: defined there with its predicates
from core.geo import AdminCodes, Area, Point


def stable_hash(*parts: str, size: int = 16) -> str:
    """Hex digest of `parts`, stable across processes and machines."""
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


@dataclass(frozen=True, slots=True)
class Record:
    """One row of a dataset, keyed.

    `group` is the entity the row belongs to (an establishment for an inspection), `rating` its
    grade on the dataset's ordinal scale (Alim'Confiance: 1 = Très satisfaisant … 4 = urgent).
    """

    dataset: str
    key: str
    fields: Mapping[str, Any]
    fingerprint: str
    point: Point | None = None
    admin: AdminCodes = field(default_factory=AdminCodes)
    group: str = ""
    rating: int | None = None

    @property
    def entity(self) -> str:
        return self.group or self.key


class Op(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REMOVED = "removed"
    NOTICE = "notice"  # about the dataset, not one record (core/storms.py): `after` holds the notice's facts


class Kind(StrEnum):
    """Domain kinds. Generic datasets only use created/updated/removed."""

    CREATED = "created"
    UPDATED = "updated"
    REMOVED = "removed"
    NEW_INSPECTION = "new_inspection"
    DOWNGRADE = "downgrade"
    UPGRADE = "upgrade"
    AGED_OUT = "aged_out"
    MASS_UPDATE = "mass_update"  # a dataset notice: the publisher rewrote a field on many records
    SOURCE_STALE = "source_stale"  # a dataset notice (core/health.py): no new version for too long
    SOURCE_FAILING = "source_failing"  # a dataset notice: its source keeps failing
    SOURCE_RECOVERED = "source_recovered"  # a dataset notice: the stale or failing source is back to normal


@dataclass(frozen=True, slots=True)
class Change:
    id: str
    dataset: str
    key: str
    op: Op
    kinds: tuple[str, ...]
    before: Record | None
    after: Record | None
    changed: tuple[str, ...]
    detected_at: datetime
    source_version: str

    @property
    def kind(self) -> str:
        return self.kinds[0]

    @property
    def current(self) -> Record:
        """The record as it is now, or as it was last seen when removed."""
        record = self.after or self.before
        if record is None:
            raise ValueError(f"change {self.id} has neither side")
        return record


def change_id(dataset: str, key: str, op: Op, *, before: Record | None, after: Record | None, version: str) -> str:
    """Deterministic: reprocessing the same snapshot gives the same ids (and so the same idempotency keys)."""
    return stable_hash(
        dataset, key, op.value, before.fingerprint if before else "", after.fingerprint if after else "", version
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    area: Area
    destination: str
    filter: Filter = field(default_factory=Filter)
    lang: str = "fr"
    secret: str | None = field(default=None, repr=False)
    label: str = ""
    paused: bool = False
    disabled_reason: str | None = None
    digest_hours: int = 0  # core/schedule.py: alerts held and sent together every N hours (0: each at once)
    quiet_hours: str = ""  # "22:00-07:00": non-urgent alerts held to the end of the window
    timezone: str = "Europe/Paris"  # of the digest times and quiet hours
    owner: str = ""  # the tenant whose API key created it ("": made by an operator, the CLI or a bot)
    previous_secret: str | None = field(default=None, repr=False)  # a rotated-out secret, still signing until
    previous_until: datetime | None = None  # this moment (the rotation's overlap)
    batch: bool = False  # webhooks: what is due goes out together, one CloudEvents batch per request

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets a webhook is signed with at `now`: the current one, and the previous one during the overlap
        of a rotation (Standard Webhooks receivers accept any one of several signatures)."""
        current = (self.secret,) if self.secret else ()
        overlap = self.previous_secret is not None and self.previous_until is not None and now < self.previous_until
        return (*current, self.previous_secret) if overlap and self.previous_secret else current

    @property
    def active(self) -> bool:
        """Paused (by its owner) or disabled (the channel refused it for good): it matches nothing."""
        return not self.paused and self.disabled_reason is None

    @property
    def channel(self) -> str:
        """The channel is the destination URL's scheme (`webhook+https` → `webhook`)."""
        return self.destination.partition("://")[0].partition("+")[0]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change for one subscription. `key` is the idempotency key receivers dedupe on."""

    key: str
    change: Change
    subscription: Subscription

    @classmethod
    def of(cls, change: Change, subscription: Subscription) -> Delivery:
        return cls(stable_hash(change.id, subscription.id), change, subscription)
