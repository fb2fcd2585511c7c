"""Plain builders of core objects for the core tests. Fingerprints and ratings are computed, never typed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.diff import diff_one, removal
from core.geo import AdminCodes, Area, Everywhere, Point
from core.model import Change, Delivery, Filter, Record, Subscription
from core.profiles import ALIMCONFIANCE, GENERIC, RATING_LABELS, Profile, rating_of

AT = datetime(2025, 6, 30, 8, 15, tzinfo=UTC)
PARIS = Point(48.8566, 2.3522)
LYON = Point(45.7640, 4.8357)
PARIS_ADMIN = AdminCodes(commune="75056", postcode="75001", departement="75", region="11")
NO_ADMIN = AdminCodes()
ANY = Filter()
LABEL = "synthese_eval_sanit"


def record(profile: Profile, key: str, fields: dict[str, Any], *, group: str = "", point: Point | None = None,
           admin: AdminCodes = NO_ADMIN) -> Record:
    """A record fingerprinted by `profile`, rated from its label field when it has one."""
    return Record(profile.dataset or "generic", key, fields, profile.fingerprint(fields), point=point, admin=admin,
                  group=group, rating=rating_of(fields.get(LABEL)))


def inspection(key: str, *, entity: str = "e1", date: str | None = "2025-03-01", rating: int | None = 2,
               point: Point | None = PARIS, admin: AdminCodes = PARIS_ADMIN, **extra: Any) -> Record:
    """An Alim'Confiance inspection with the canonical display fields."""
    fields: dict[str, Any] = {
        "name": "Chez Paul", "address": "1 rue de Rivoli", "postcode": "75001", "commune": "Paris",
        "activity": "Restaurant", "date_inspection": date, "date_extraction": "2025-06-29",
        LABEL: RATING_LABELS[rating]["fr"] if rating is not None else None, **extra,
    }
    return record(ALIMCONFIANCE, key, fields, group=entity, point=point, admin=admin)


def generic(key: str, **fields: Any) -> Record:
    return record(GENERIC, key, fields)


def created(after: Record, *, version: str = "v1", profile: Profile = ALIMCONFIANCE,
            last_in_group: Record | None = None) -> Change:
    change = diff_one(None, after, at=AT, version=version, profile=profile, last_in_group=last_in_group)
    assert change is not None
    return change


def updated(before: Record, after: Record, *, version: str = "v1", profile: Profile = ALIMCONFIANCE) -> Change:
    change = diff_one(before, after, at=AT, version=version, profile=profile)
    assert change is not None
    return change


def removed(before: Record, *, version: str = "v1", profile: Profile = ALIMCONFIANCE,
            floor: str | None = None) -> Change:
    return removal(before, at=AT, version=version, profile=profile, floor=floor)


def subscription(sid: str = "s1", area: Area | None = None, *, destination: str = "slack://T000/C123",
                 filter: Filter = ANY, lang: str = "fr", secret: str | None = None,
                 label: str = "") -> Subscription:
    return Subscription(sid, area if area is not None else Everywhere(), destination, filter, lang, secret, label)


def delivery(change: Change, sub: Subscription | None = None) -> Delivery:
    return Delivery.of(change, sub if sub is not None else subscription())
