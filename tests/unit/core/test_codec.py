"""codec: dict forms round trip, the envelope says exactly what is wrong with a bad message."""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import codec
from core.errors import EnvelopeError, SubscriptionError
from core.geo import AdminArea, AdminCodes, Area, BBox, Circle, Everywhere, Point, Polygon
from core.model import Change, Filter, Record, Subscription
from tests.unit.core import strategies as s
from tests.unit.core.factories import AT, LYON, PARIS, created, delivery, generic, inspection, removed, updated

SQUARE = ((2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 49.0), (2.0, 48.0))
AREAS: list[Area] = [
    Circle(PARIS, 1_500.0),
    BBox(48.8, 2.25, 48.92, 2.42),
    Polygon(((SQUARE,),)),
    Polygon(((SQUARE, ((2.4, 48.4), (2.6, 48.4), (2.6, 48.6), (2.4, 48.4))), (SQUARE,))),
    AdminArea("departement", "75"),
    AdminArea("commune", "75056"),
    Everywhere(),
]
RECORDS = [
    inspection("k1"),
    inspection("k2", point=None, admin=AdminCodes(), rating=None),
    generic("k3", a=1, b=[1, 2], c={"x": None}),
]
CHANGES = [
    created(inspection("k")),
    updated(inspection("k", rating=1), inspection("k", rating=4, point=LYON)),
    removed(inspection("k", date="2023-01-01"), floor="2024-01-01"),
    replace(created(inspection("k")), detected_at=datetime(2025, 6, 30, 10, 0, tzinfo=timezone(timedelta(hours=2)))),
]


def through_json(value: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return loaded


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.key)
def test_record_round_trip(record: Record) -> None:
    assert codec.record_from_dict(through_json(codec.record_to_dict(record))) == record


def test_record_from_a_minimal_dict() -> None:
    minimal = {"dataset": "d", "key": "k", "fields": {}, "fingerprint": "f"}
    assert codec.record_from_dict(minimal) == Record("d", "k", {}, "f")
    assert codec.record_from_dict({**minimal, "admin": None}).admin == AdminCodes()


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: c.op.value + str(c.detected_at.utcoffset()))
def test_change_round_trip(change: Change) -> None:
    assert codec.change_from_dict(through_json(codec.change_to_dict(change))) == change


@settings(deadline=None)
@given(s.changes())
def test_any_change_round_trips(change: Change) -> None:
    assert codec.change_from_dict(through_json(codec.change_to_dict(change))) == change


@pytest.mark.parametrize("area", AREAS, ids=lambda a: type(a).__name__)
def test_subscription_round_trip_for_every_area(area: Area) -> None:
    sub = Subscription("s1", area, "webhook+https://partner.example/hook", lang="en", secret="whsec_abc",
                       label="Near the office", filter=Filter(frozenset({"alimconfiance"}),
                                                              frozenset({"downgrade", "new_inspection"}), 3))
    assert codec.subscription_from_dict(through_json(codec.subscription_to_dict(sub))) == sub
    assert codec.area_from_dict(codec.area_to_dict(area)) == area


def test_subscription_from_a_minimal_dict_has_defaults() -> None:
    sub = codec.subscription_from_dict({"id": "s", "area": {"type": "everywhere"}, "destination": "console://"})
    assert sub == Subscription("s", Everywhere(), "console://")


@pytest.mark.parametrize(("paused", "reason"), [(True, None), (False, "slack is_archived"), (True, "gone")])
def test_subscription_status_round_trips(paused: bool, reason: str | None) -> None:
    sub = Subscription("s", Everywhere(), "console://", paused=paused, disabled_reason=reason)
    assert codec.subscription_from_dict(through_json(codec.subscription_to_dict(sub))) == sub
    assert not sub.active


def test_a_non_text_disabled_reason_is_a_subscription_error() -> None:
    with pytest.raises(SubscriptionError, match="disabled_reason"):
        codec.subscription_from_dict({"id": "s", "area": {"type": "everywhere"}, "destination": "console://",
                                      "disabled_reason": 3})


def test_area_codes_are_read_as_strings() -> None:
    assert codec.area_from_dict({"type": "admin", "level": "departement", "code": 75}) == AdminArea("departement", "75")


@pytest.mark.parametrize("area", [{"type": "hexagon"}, {}])
def test_unknown_area_types_are_subscription_errors(area: dict[str, Any]) -> None:
    with pytest.raises(SubscriptionError, match="unknown area type"):
        codec.area_from_dict(area)


def test_an_area_the_codec_does_not_know_cannot_be_written() -> None:
    class Anywhere:
        def contains(self, point: Point | None, admin: AdminCodes | None) -> bool:
            return True

        @property
        def bbox(self) -> None:
            return None

    with pytest.raises(SubscriptionError, match="Anywhere"):
        codec.area_to_dict(Anywhere())


def test_delivery_round_trip_drops_the_secret() -> None:
    sub = Subscription("s1", Circle(PARIS, 1000), "webhook+https://partner.example/hook", secret="whsec_abc")
    sent = delivery(CHANGES[1], sub)
    as_dict = codec.delivery_to_dict(sent)
    assert as_dict["subscription"]["secret"] is None
    assert b"whsec_abc" not in orjson.dumps(as_dict)
    assert codec.subscription_to_dict(sub)["secret"] == "whsec_abc"
    back = codec.delivery_from_dict(through_json(as_dict))
    assert back == replace(sent, subscription=replace(sub, secret=None, destination="webhook+https://***"))
    assert back.key == sent.key
    assert back.subscription.channel == "webhook"


@pytest.mark.parametrize(("destination", "on_the_bus"), [
    ("slack://xoxb-1-2-s3cr3t@C0123ABCD", "slack://***"),
    ("slack+https://hooks.slack.com/services/T0/B0/s3cr3tPath", "slack+https://***"),
    ("tg://123:s3cr3t@42", "tg://***"),
    ("webhook+https://partner.example/h?token=s3cr3t", "webhook+https://***"),
    ("no scheme s3cr3t", "***"),
])
def test_bus_forms_carry_no_destination_secret(destination: str, on_the_bus: str) -> None:
    sub = Subscription("s1", Circle(PARIS, 1000), destination)
    assert codec.subscription_to_dict(sub, include_secret=False)["destination"] == on_the_bus
    assert b"s3cr3t" not in orjson.dumps(codec.delivery_to_dict(delivery(CHANGES[1], sub)))
    assert codec.subscription_to_dict(sub)["destination"] == destination  # what the stores keep


# -- envelope -----------------------------------------------------------------------------------------------------


def envelope(type_: str = codec.CHANGE, data: dict[str, Any] | None = None) -> codec.Envelope:
    return codec.Envelope("id-1", type_, "/vigie/alimconfiance", "k", AT,
                          codec.change_to_dict(CHANGES[0]) if data is None else data)


def test_envelope_carries_the_cloudevents_attributes() -> None:
    doc = envelope().to_dict()
    assert doc | {"data": None} == {
        "specversion": "1.0", "id": "id-1", "source": "/vigie/alimconfiance", "type": "org.vigie.change",
        "subject": "k", "time": "2025-06-30T08:15:00+00:00", "datacontenttype": "application/json",
        "vigieversion": "1", "data": None,
    }


@pytest.mark.parametrize("as_text", [False, True])
def test_envelope_round_trip(as_text: bool) -> None:
    sent = envelope()
    raw = sent.encode()
    got = codec.decode(raw.decode() if as_text else raw)
    assert got == sent
    assert codec.read(got, codec.CHANGE, codec.change_from_dict) == CHANGES[0]


def test_decode_defaults_the_subject() -> None:
    doc = envelope().to_dict()
    del doc["subject"]
    assert codec.decode(orjson.dumps(doc)).subject == ""


def raw(**changes: Any) -> bytes:
    doc = envelope().to_dict()
    for name, value in changes.items():
        if value is DROP:
            del doc[name]
        else:
            doc[name] = value
    return orjson.dumps(doc)


DROP = object()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param(None, "tombstone", id="tombstone"),
        pytest.param(b"", "not JSON", id="empty-bytes"),
        pytest.param(b"{not json", "not JSON", id="not-json"),
        pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param(b"[1, 2]", "must be a JSON object, got list", id="array"),
        pytest.param(b'"text"', "must be a JSON object, got str", id="string"),
        pytest.param(b"{}", "missing attribute(s): specversion, id, source, type, time, data", id="empty-object"),
        pytest.param(raw(id=DROP), "missing attribute(s): id", id="no-id"),
        pytest.param(raw(time=DROP, data=DROP), "missing attribute(s): time, data", id="no-time-no-data"),
        pytest.param(raw(vigieversion=DROP), "unsupported vigieversion None", id="no-version"),
        pytest.param(raw(vigieversion="2"), "unsupported vigieversion '2'", id="future-version"),
        pytest.param(raw(vigieversion=1), "unsupported vigieversion 1", id="version-as-number"),
        pytest.param(raw(type="com.example.change"), "unexpected type 'com.example.change'", id="foreign-type"),
        pytest.param(raw(type=["org.vigie.change"]), "unexpected type", id="type-not-a-string"),
        pytest.param(raw(data=[1]), "non-object data", id="data-not-an-object"),
        pytest.param(raw(time="yesterday"), "bad time attribute", id="bad-time"),
        pytest.param(raw(time=1751270400), "bad time attribute", id="time-as-number"),
    ],
)
def test_decode_rejects_with_a_reason(message: bytes | None, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        codec.decode(message)
    assert reason in str(caught.value)


def test_read_checks_the_type() -> None:
    with pytest.raises(EnvelopeError, match=re.escape("expected type 'org.vigie.record', got 'org.vigie.change'")):
        codec.read(envelope(), codec.RECORD, codec.record_from_dict)


@pytest.mark.parametrize(
    ("type_", "data", "reader", "reason"),
    [
        (codec.CHANGE, {"id": "x"}, codec.change_from_dict, "KeyError: 'dataset'"),
        (codec.CHANGE, {**codec.change_to_dict(CHANGES[0]), "op": "moved"}, codec.change_from_dict, "ValueError"),
        (codec.CHANGE, {**codec.change_to_dict(CHANGES[0]), "detected_at": 5}, codec.change_from_dict, "TypeError"),
        (codec.CHANGE, {**codec.change_to_dict(CHANGES[0]), "after": "k"}, codec.change_from_dict, "Error"),
        (codec.RECORD, {**codec.record_to_dict(RECORDS[0]), "point": {"lat": 91, "lon": 0}},
         codec.record_from_dict, "out of range"),
        (codec.RECORD, {**codec.record_to_dict(RECORDS[0]), "admin": {"canton": "x"}}, codec.record_from_dict,
         "TypeError"),
        (codec.SUBSCRIPTION, {"id": "s", "area": {"type": "circle", "lat": 0, "lon": 0, "radius_m": 0},
                              "destination": "x://"}, codec.subscription_from_dict, "SubscriptionError: radius"),
        (codec.SUBSCRIPTION, {"id": "s", "area": {"type": "polygon", "geometry": "POLYGON((2 48, 3 48))"},
                              "destination": "x://"}, codec.subscription_from_dict, "Error"),
        (codec.SUBSCRIPTION, {"id": "s", "area": "everywhere", "destination": "x://"}, codec.subscription_from_dict,
         "Error"),
        (codec.SUBSCRIPTION, {"id": "s", "area": {"type": "everywhere"}, "destination": "x://", "filter": [1]},
         codec.subscription_from_dict, "Error"),
        (codec.DELIVERY, {"key": "k", "change": "c", "subscription": {}}, codec.delivery_from_dict, "TypeError"),
    ],
)
def test_read_wraps_reader_errors(type_: str, data: dict[str, Any], reader: Any, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=f"invalid {type_} data: .*{reason}"):
        codec.read(envelope(type_, data), type_, reader)


def test_time_keeps_its_offset() -> None:
    local = datetime(2025, 6, 30, 10, 15, tzinfo=timezone(timedelta(hours=2)))
    got = codec.decode(codec.Envelope("i", codec.RECORD, "/s", "", local, {}).encode()).time
    assert got == local == AT
    assert got.utcoffset() == timedelta(hours=2)
    assert got.astimezone(UTC) == AT


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
READERS = {
    codec.RECORD: (codec.record_from_dict, codec.record_to_dict(RECORDS[0])),
    codec.CHANGE: (codec.change_from_dict, codec.change_to_dict(CHANGES[1])),
    codec.SUBSCRIPTION: (codec.subscription_from_dict, codec.subscription_to_dict(
        Subscription("s", Polygon(((SQUARE,),)), "x://", Filter(frozenset({"d"}), frozenset({"created"}), 2)))),
    codec.DELIVERY: (codec.delivery_from_dict, codec.delivery_to_dict(delivery(CHANGES[1]))),
}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON document, as a path of keys and indexes."""
    inner: list[Any] = list(value.items()) if isinstance(value, dict) else list(enumerate(value)) \
        if isinstance(value, list) else []
    return [prefix, *(p for k, v in inner for p in paths(v, (*prefix, k)))]


def put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = list(doc) if isinstance(doc, list) else dict(doc)
    copy[path[0]] = put(doc[path[0]], path[1:], value)
    return copy


@settings(deadline=None, max_examples=500)
@given(type_=st.sampled_from(sorted(READERS)), data=st.data())
def test_read_raises_only_envelope_errors_on_corrupted_data(type_: str, data: st.DataObject) -> None:
    reader, good = READERS[type_]
    path = data.draw(st.sampled_from(paths(through_json(good))[1:]))
    corrupted = put(through_json(good), path, data.draw(json_values))
    with contextlib.suppress(EnvelopeError):
        codec.read(codec.Envelope("i", type_, "/s", "", AT, corrupted), type_, reader)
