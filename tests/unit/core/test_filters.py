"""filters and where: what a predicate accepts, its JSON and text forms, and the messages for bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from core.codec import subscription_from_dict, subscription_to_dict
from core.errors import SubscriptionError
from core.filters import (
    And,
    Contains,
    Eq,
    Exists,
    Filter,
    In,
    Not,
    Or,
    Predicate,
    Range,
    filter_from_dict,
    filter_to_dict,
    from_json,
    holds,
    to_json,
)
from core.model import Change
from core.where import parse, text
from tests.unit.core import strategies as s
from tests.unit.core.factories import created, inspection, subscription, updated

RESTAURANT = created(inspection("k", rating=3, activity="Restaurant|Traiteur", name="Pizzéria  du Port",
                                siret="123", date_inspection="2025-03-01"))
DOWNGRADE = updated(inspection("k", rating=2), inspection("k", rating=4))


@pytest.mark.parametrize(("where", "change", "expected"), [
    ("rating >= 3", RESTAURANT, True),
    ("rating > 3", RESTAURANT, False),
    ("rating between 1 and 3", RESTAURANT, True),
    ("activity = restaurant", RESTAURANT, True),  # one of two activity types, without case
    ("activity = 'Restaurant|Traiteur'", RESTAURANT, False),
    ("activity in (Boulangerie, TRAITEUR)", RESTAURANT, True),
    ("name contains 'pizzeria du'", RESTAURANT, True),  # accents and runs of spaces do not count
    ("name = 'pizzeria du port'", RESTAURANT, True),
    ("siret = 123", RESTAURANT, True),  # a number equals the same number written as text
    ("siret exists and not agrement exists", RESTAURANT, True),
    ("date_inspection >= 2025-01-01 and date_inspection < 2025-04-01", RESTAURANT, True),
    ("date_inspection > 2025-03-01", RESTAURANT, False),
    ("name > 3", RESTAURANT, False),  # text and a number do not compare
    ("missing != 1", RESTAURANT, True),  # a missing field satisfies only a negation
    ("missing = 1 or missing exists", RESTAURANT, False),
    ("kind = downgrade", DOWNGRADE, True),
    ("kind = downgrade", RESTAURANT, False),
    ("changed = synthese_eval_sanit and op = updated", DOWNGRADE, True),
    ("dataset = alimconfiance and (rating = 4 or kind = upgrade)", DOWNGRADE, True),
    ("not (rating = 4 or kind = upgrade)", DOWNGRADE, False),
])
def test_where_accepts(where: str, change: Change, expected: bool) -> None:
    assert holds(parse(where), change) is expected


@pytest.mark.parametrize(("where", "message"), [
    ("", "where: empty condition"),
    ("rating >=", "where: at column 10: expected a value"),
    ("rating >= 3 and", "at column 16: expected a field name, 'not' or '('"),
    ("(rating = 1", "expected ')', found the end"),
    ("rating is 3", "at column 8: expected =, !=, <, <=, >, >=, in, contains, exists or between, found 'is'"),
    ("activity in Restaurant", "expected '(' after in"),
    ("rating between 1 or 3", "expected 'and' after the lower bound"),
    ("rating = 1 rating = 2", "expected 'and', 'or' or the end"),
    ("name = \"open", "at column 8: unexpected '\"'"),
    (" or ".join(["a = 1"] * 65), "at most 64 conditions"),
    ("not " * 9 + "a exists", "at most 8 levels"),
])
def test_where_errors_say_where(where: str, message: str) -> None:
    with pytest.raises(SubscriptionError) as raised:
        parse(where)
    assert message in str(raised.value)


@pytest.mark.parametrize(("data", "message"), [
    ([], "filter: expected an object, got list"),
    ({"and": []}, "and: expected a non-empty list"),
    ({"and": [{"field": "a", "eq": 1}, {"field": "b", "in": "x"}]}, "and[1].in: expected a list of 1 to 64 values"),
    ({"or": [{"not": {"field": "a", "eq": [1]}}]}, "or[0].not.eq: expected text or a number"),
    ({"field": "a", "eq": 1, "in": [1]}, "expected one of eq, in, contains, exists or gt/gte/lt/lte"),
    ({"field": "", "eq": 1}, "field: expected a field name"),
    ({"field": "a", "like": "x"}, "like: unknown operator"),
    ({"field": "a", "exists": "yes"}, "exists: expected true or false"),
    ({"field": "a", "contains": ""}, "contains: expected some text"),
    ({"field": "a", "gte": True}, "gte: expected text or a number"),
    ({"field": "a", "eq": float("inf")}, "eq: expected a finite number"),
    ({"and": [{"field": "a", "eq": 1}], "or": []}, "'and' stands alone in its object"),
])
def test_json_errors_name_the_path(data: object, message: str) -> None:
    with pytest.raises(SubscriptionError) as raised:
        from_json(data)
    assert message in str(raised.value)


def test_json_form_reads_as_documented() -> None:
    data = {"and": [{"field": "rating", "gte": 3}, {"field": "activity", "in": ["Restaurant"]},
                    {"not": {"field": "name", "contains": "burger"}}, {"field": "siret", "exists": False}]}
    assert from_json(data) == And((Range("rating", gte=3), In("activity", ("Restaurant",)),
                                   Not(Contains("name", "burger")), Not(Exists("siret"))))


@settings(max_examples=300)
@given(predicate=s.predicates)
def test_json_round_trip(predicate: Predicate) -> None:
    assert from_json(to_json(predicate)) == predicate


@settings(max_examples=300)
@given(predicate=s.predicates, change=s.changes())
def test_text_round_trip_keeps_the_meaning(predicate: Predicate, change: Change) -> None:
    again = parse(text(predicate))
    assert holds(again, change) == holds(predicate, change)
    assert parse(text(again)) == again


def test_text_round_trip_is_exact_for_what_parse_makes() -> None:
    source = 'kind = "downgrade" or (postcode = 75011 and (a = 1 or b exists)) and not (c != 2.5)'
    assert parse(text(parse(source))) == parse(source)
    assert text(Or((Or((Eq("a", 1), Eq("b", 2))), Eq("c", 3)))) == "(a = 1 or b = 2) or c = 3"


@pytest.mark.parametrize(("f", "change", "expected"), [
    (Filter(max_rating=2), DOWNGRADE, False),
    (Filter(max_rating=4, min_rating=4), DOWNGRADE, True),
    (Filter(activities=frozenset({"traiteur"})), RESTAURANT, True),
    (Filter(activities=frozenset({"Boulangerie"})), RESTAURANT, False),
    (Filter(where=Eq("kind", "downgrade")), DOWNGRADE, True),
    (Filter(kinds=frozenset({"upgrade"}), where=Eq("kind", "downgrade")), DOWNGRADE, False),
])
def test_filter_accepts(f: Filter, change: Change, expected: bool) -> None:
    assert f.accepts(change, change.current.rating) is expected


def test_older_subscriptions_still_load() -> None:
    data = subscription_to_dict(subscription("s1"))
    data["filter"] = {"datasets": ["alimconfiance"], "kinds": [], "min_rating": 3}
    assert subscription_from_dict(data).filter == Filter(frozenset({"alimconfiance"}), min_rating=3)


@given(f=s.filters)
def test_filter_dict_round_trip(f: Filter) -> None:
    assert filter_from_dict(filter_to_dict(f)) == f


def test_a_bad_stored_filter_names_its_field() -> None:
    with pytest.raises(SubscriptionError, match=r"filter max_rating must be 1\.\.4"):
        filter_from_dict({"max_rating": 9})
    with pytest.raises(SubscriptionError, match=r"or\[0\]: expected an object"):
        filter_from_dict({"where": {"or": ["x"]}})
