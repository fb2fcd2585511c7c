"""Plain-dict forms of the domain types, and the versioned envelope every bus message wears.

The envelope carries CloudEvents 1.0 attributes (specversion, id, source, type, subject, time,
datacontenttype) plus `vigieversion`. `decode` never trusts its input: anything malformed raises
EnvelopeError with a reason fit for a dead-letter record.

On Kafka, an envelope travels in the CloudEvents Kafka binding's structured mode: the whole event is the
value, and the record carries `KAFKA_HEADERS` (`content-type: application/cloudevents+json`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from core.errors import EnvelopeError, SubscriptionError
from core.filters import filter_from_dict, filter_to_dict
from core.geo import AdminArea, AdminCodes, Area, BBox, Circle, Everywhere, Point, Polygon
from core.model import Change, Delivery, Op, Record, Subscription
from core.schedule import DEFAULT_TIMEZONE, parse_digest, parse_quiet, quiet_text, zone
from core.topology import CONTENT_TYPE_HEADER

VIGIE_VERSION = "1"
T = TypeVar("T")
TYPE_PREFIX = "org.vigie."
RECORD = "org.vigie.record"
SNAPSHOT_END = "org.vigie.snapshot.end"
RECORD_REMOVED = "org.vigie.record.removed"
CHANGE = "org.vigie.change"
DELIVERY = "org.vigie.delivery"
SUBSCRIPTION = "org.vigie.subscription"
CONTENT_TYPE = "application/cloudevents+json"
KAFKA_HEADERS: tuple[tuple[str, bytes], ...] = ((CONTENT_TYPE_HEADER, CONTENT_TYPE.encode()),)


def record_to_dict(r: Record) -> dict[str, Any]:
    return {
        "dataset": r.dataset, "key": r.key, "group": r.group, "fields": dict(r.fields),
        "fingerprint": r.fingerprint, "rating": r.rating,
        "point": None if r.point is None else {"lat": r.point.lat, "lon": r.point.lon},
        "admin": {"commune": r.admin.commune, "postcode": r.admin.postcode,
                  "departement": r.admin.departement, "region": r.admin.region},
    }


def record_from_dict(d: dict[str, Any]) -> Record:
    point = d.get("point")
    return Record(
        dataset=d["dataset"], key=d["key"], fields=d["fields"], fingerprint=d["fingerprint"],
        point=None if point is None else Point(point["lat"], point["lon"]),
        admin=AdminCodes(**d.get("admin") or {}), group=d.get("group", ""), rating=d.get("rating"),
    )


def change_to_dict(c: Change) -> dict[str, Any]:
    return {
        "id": c.id, "dataset": c.dataset, "key": c.key, "op": c.op.value, "kinds": list(c.kinds),
        "before": None if c.before is None else record_to_dict(c.before),
        "after": None if c.after is None else record_to_dict(c.after),
        "changed": list(c.changed), "detected_at": c.detected_at.isoformat(), "source_version": c.source_version,
    }


def change_from_dict(d: dict[str, Any]) -> Change:
    return Change(
        id=d["id"], dataset=d["dataset"], key=d["key"], op=Op(d["op"]), kinds=tuple(d["kinds"]),
        before=None if d.get("before") is None else record_from_dict(d["before"]),
        after=None if d.get("after") is None else record_from_dict(d["after"]),
        changed=tuple(d.get("changed", ())), detected_at=datetime.fromisoformat(d["detected_at"]),
        source_version=d["source_version"],
    )


def area_to_dict(area: Area) -> dict[str, Any]:
    if isinstance(area, Circle):
        return {"type": "circle", "lat": area.center.lat, "lon": area.center.lon, "radius_m": area.radius_m}
    if isinstance(area, BBox):
        return {"type": "bbox", "south": area.south, "west": area.west, "north": area.north, "east": area.east}
    if isinstance(area, Polygon):
        return {"type": "polygon", "geometry": area.to_geojson()}
    if isinstance(area, AdminArea):
        return {"type": "admin", "level": area.level, "code": area.code}
    if isinstance(area, Everywhere):
        return {"type": "everywhere"}
    raise SubscriptionError(f"unknown area type: {type(area).__name__}")


def area_from_dict(d: dict[str, Any]) -> Area:
    kind = d.get("type")
    if kind == "circle":
        return Circle(Point(float(d["lat"]), float(d["lon"])), float(d["radius_m"]))
    if kind == "bbox":
        return BBox(float(d["south"]), float(d["west"]), float(d["north"]), float(d["east"]))
    if kind == "polygon":
        return Polygon.from_geojson(d["geometry"])
    if kind == "admin":
        return AdminArea(d["level"], str(d["code"]))
    if kind == "everywhere":
        return Everywhere()
    raise SubscriptionError(f"unknown area type: {kind!r}")


def opaque_destination(destination: str) -> str:
    """A destination as bus messages carry it: its scheme only, since the rest may be a secret (a Slack token, an
    incoming webhook's path, a bot token); notifiers read the whole destination from the subscription store."""
    scheme, sep, _ = destination.partition("://")
    return f"{scheme}://***" if sep else "***"


def subscription_to_dict(s: Subscription, *, include_secret: bool = True) -> dict[str, Any]:
    """`include_secret=False` is the bus form: no signing secret and an opaque destination (`opaque_destination`)."""
    destination = s.destination if include_secret else opaque_destination(s.destination)
    return {
        "id": s.id, "area": area_to_dict(s.area), "destination": destination, "lang": s.lang, "label": s.label,
        "filter": filter_to_dict(s.filter),
        "secret": s.secret if include_secret else None,
        "digest_hours": s.digest_hours, "quiet_hours": s.quiet_hours, "timezone": s.timezone,
        "paused": s.paused, "disabled_reason": s.disabled_reason, "owner": s.owner, "batch": s.batch,
        **(_rotation(s) if include_secret else {}),
    }


def _rotation(s: Subscription) -> dict[str, Any]:
    """A secret rotation's previous secret and the end of its overlap (stores only, never on the bus)."""
    if s.previous_secret is None or s.previous_until is None:
        return {}
    return {"previous_secret": s.previous_secret, "previous_until": s.previous_until.isoformat()}


def _reason(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SubscriptionError(f"disabled_reason must be a string or null, got {value!r}")
    return value or None


def subscription_from_dict(d: dict[str, Any]) -> Subscription:
    f = d.get("filter") or {}
    return Subscription(
        id=d["id"], area=area_from_dict(d["area"]), destination=d["destination"], lang=d.get("lang", "fr"),
        label=d.get("label", ""), secret=d.get("secret"), paused=bool(d.get("paused", False)),
        disabled_reason=_reason(d.get("disabled_reason")), owner=str(d.get("owner") or ""),
        filter=filter_from_dict(f), batch=bool(d.get("batch", False)),
        **_schedule(d), **_rotation_from(d),
    )


def _rotation_from(d: dict[str, Any]) -> dict[str, Any]:
    previous, until = d.get("previous_secret"), d.get("previous_until")
    if not isinstance(previous, str) or not isinstance(until, str):
        return {}
    return {"previous_secret": previous, "previous_until": datetime.fromisoformat(until)}


def _schedule(d: dict[str, Any]) -> dict[str, Any]:
    """A subscription's digest and quiet hours (core/schedule.py), checked; absent in older data: none."""
    timezone = str(d.get("timezone") or DEFAULT_TIMEZONE)
    zone(timezone)
    quiet = quiet_text(parse_quiet(str(d.get("quiet_hours") or "")))
    return {"digest_hours": parse_digest(d.get("digest_hours")), "quiet_hours": quiet, "timezone": timezone}


def delivery_to_dict(d: Delivery) -> dict[str, Any]:
    """Secrets stay out of bus messages (no signing secret, an opaque destination): notifiers read them from the
    subscription store."""
    return {"key": d.key, "change": change_to_dict(d.change),
            "subscription": subscription_to_dict(d.subscription, include_secret=False)}


def delivery_from_dict(d: dict[str, Any]) -> Delivery:
    return Delivery(d["key"], change_from_dict(d["change"]), subscription_from_dict(d["subscription"]))


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "specversion": "1.0", "id": self.id, "source": self.source, "type": self.type,
            "subject": self.subject, "time": self.time.isoformat(), "datacontenttype": "application/json",
            "vigieversion": VIGIE_VERSION, "data": self.data,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_dict())


_REQUIRED = ("specversion", "id", "source", "type", "time", "data")


def decode(raw: bytes | str | None) -> Envelope:
    """Parse and check an envelope; EnvelopeError says what is wrong."""
    if raw is None:
        raise EnvelopeError("empty message (tombstone)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EnvelopeError(f"envelope must be a JSON object, got {type(doc).__name__}")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise EnvelopeError(f"missing attribute(s): {', '.join(missing)}")
    if doc.get("vigieversion") != VIGIE_VERSION:
        raise EnvelopeError(f"unsupported vigieversion {doc.get('vigieversion')!r}")
    if not isinstance(doc["data"], dict) or not str(doc["type"]).startswith(TYPE_PREFIX):
        raise EnvelopeError(f"unexpected type {doc['type']!r} or non-object data")
    try:
        time = datetime.fromisoformat(doc["time"])
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"bad time attribute: {exc}") from exc
    return Envelope(str(doc["id"]), doc["type"], str(doc["source"]), str(doc.get("subject", "")), time, doc["data"])


def read(envelope: Envelope, expected_type: str, reader: Callable[[dict[str, Any]], T]) -> T:
    """Turn an envelope's data into a domain object, or raise EnvelopeError with the reason."""
    if envelope.type != expected_type:
        raise EnvelopeError(f"expected type {expected_type!r}, got {envelope.type!r}")
    try:
        return reader(envelope.data)
    except (AttributeError, KeyError, TypeError, ValueError, SubscriptionError) as exc:
        raise EnvelopeError(f"invalid {expected_type} data: {type(exc).__name__}: {exc}") from exc
