"""Domain types, errors and the profile registry."""

from __future__ import annotations

import dataclasses

import pytest

from core.errors import DeliveryError, EnvelopeError, RecordError, SubscriptionError, VigieError
from core.geo import Everywhere
from core.model import Change, Delivery, Filter, Op, Record, Subscription, change_id, stable_hash
from core.ports import RawSnapshot, Snapshot
from core.profiles import ALIMCONFIANCE, profile_for
from tests.unit.core.factories import AT, created, generic, inspection, removed, subscription


def test_stable_hash_is_stable_and_separates_parts() -> None:
    # pinned: idempotency keys must survive restarts, machines and Python versions
    assert stable_hash("a", "b") == "065ab5741cdfad44687cf119c1eb4ec9"
    assert stable_hash("ab", "") != stable_hash("a", "b")
    assert len(stable_hash("x", size=8)) == 16


def test_change_id_depends_on_every_input() -> None:
    one, two = generic("k", a=1), generic("k", a=2)
    variants = [
        ("d", "k", Op.UPDATED, one, two, "v1"),
        ("e", "k", Op.UPDATED, one, two, "v1"),
        ("d", "j", Op.UPDATED, one, two, "v1"),
        ("d", "k", Op.CREATED, one, two, "v1"),
        ("d", "k", Op.UPDATED, None, two, "v1"),
        ("d", "k", Op.UPDATED, one, None, "v1"),
        ("d", "k", Op.UPDATED, two, one, "v1"),
        ("d", "k", Op.UPDATED, one, two, "v2"),
    ]
    ids = {change_id(d, k, op, before=b, after=a, version=v) for d, k, op, b, a, v in variants}
    assert len(ids) == len(variants)
    assert change_id("d", "k", Op.UPDATED, before=one, after=two, version="v1") in ids


def test_record_entity_is_its_group_else_its_key() -> None:
    assert inspection("k", entity="e1").entity == "e1"
    assert generic("k").entity == "k"


def test_domain_types_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        generic("k").key = "j"  # type: ignore[misc]


def test_change_kind_and_current() -> None:
    change = created(inspection("k"))
    assert (change.kind, change.current) == ("new_inspection", change.after)
    gone = removed(inspection("k"))
    assert gone.current == gone.before


def test_a_change_without_sides_says_so() -> None:
    broken = Change("c1", "d", "k", Op.REMOVED, ("removed",), None, None, (), AT, "v1")
    with pytest.raises(ValueError, match="c1 has neither side"):
        _ = broken.current


@pytest.mark.parametrize(
    ("destination", "channel"),
    [("slack://T000/C123", "slack"), ("webhook+https://partner.example/h", "webhook"), ("tg://123", "tg"),
     ("console://", "console"), ("no-scheme", "no-scheme")],
)
def test_subscription_channel_is_the_destination_scheme(destination: str, channel: str) -> None:
    assert subscription(destination=destination).channel == channel


def test_subscription_repr_hides_the_secret() -> None:
    assert "whsec" not in repr(subscription(secret="whsec_abc"))


def test_delivery_key_is_the_hash_of_change_and_subscription() -> None:
    change = created(inspection("k"))
    sent = Delivery.of(change, subscription("s1"))
    assert sent.key == stable_hash(change.id, "s1")
    assert sent == Delivery.of(change, subscription("s1"))
    assert sent.key != Delivery.of(change, subscription("s2")).key


@pytest.mark.parametrize(
    ("flt", "rating", "accepted"),
    [
        (Filter(), None, True),
        (Filter(datasets=frozenset({"alimconfiance"})), 2, True),
        (Filter(datasets=frozenset({"other"})), 2, False),
        (Filter(kinds=frozenset({"new_inspection", "downgrade"})), 2, True),
        (Filter(kinds=frozenset({"upgrade"})), 2, False),
        (Filter(min_rating=2), 2, True),
        (Filter(min_rating=3), 2, False),
        (Filter(min_rating=1), None, False),
    ],
)
def test_filter_accepts(flt: Filter, rating: int | None, accepted: bool) -> None:
    assert flt.accepts(created(inspection("k")), rating) is accepted


def test_subscription_defaults() -> None:
    sub = Subscription("s", Everywhere(), "console://")
    assert (sub.filter, sub.lang, sub.secret, sub.label) == (Filter(), "fr", None, "")


def test_profile_for_known_and_unknown_datasets() -> None:
    assert profile_for("alimconfiance") is ALIMCONFIANCE
    other = profile_for("bornes")
    assert (other.dataset, other.volatile, other.created_kind, other.window_floor([])) == (
        "bornes", frozenset(), "created", None)


@pytest.mark.parametrize("error", [RecordError, EnvelopeError, SubscriptionError, DeliveryError])
def test_every_error_is_a_vigie_error(error: type[VigieError]) -> None:
    assert issubclass(error, VigieError)


def test_record_error_keeps_its_reason() -> None:
    error = RecordError("no date_inspection")
    assert (error.reason, str(error)) == ("no date_inspection", "no date_inspection")


@pytest.mark.parametrize(("retriable", "retry_after"), [(True, 30.0), (False, None)])
def test_delivery_error_carries_its_retry_policy(retriable: bool, retry_after: float | None) -> None:
    error = DeliveryError("429 Too Many Requests", retriable=retriable, retry_after=retry_after)
    assert (str(error), error.retriable, error.retry_after) == ("429 Too Many Requests", retriable, retry_after)


def test_snapshots_default_to_healthy() -> None:
    raw = RawSnapshot("ods+https://portal.example", [{"a": 1}], complete=True, version="v1")
    assert (raw.unchanged, raw.problem, dict(raw.meta)) == (False, None, {})
    snapshot = Snapshot("alimconfiance", raw.source, [], complete=False, version="v1")
    assert (snapshot.quarantined, snapshot.problem, snapshot.unchanged) == ([], None, False)


def test_records_compare_by_value() -> None:
    assert Record("d", "k", {"a": 1}, "f") == Record("d", "k", {"a": 1}, "f")
