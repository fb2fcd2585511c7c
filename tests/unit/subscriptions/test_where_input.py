"""Filter input: the where condition as text or JSON, activity types and the rating ceiling, and their messages."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from core.filters import And, Eq, Filter, In, Range
from subscriptions.lifecycle import patched
from subscriptions.schemas import SubscriptionIn

BASE: dict[str, Any] = {"to": "console://", "everywhere": True}


@pytest.mark.parametrize("where", ['rating >= 3 and activity in (Restaurant, "Traiteur")',
                                   {"and": [{"field": "rating", "gte": 3},
                                            {"field": "activity", "in": ["Restaurant", "Traiteur"]}]}])
def test_where_as_text_or_json(where: str | dict[str, Any]) -> None:
    spec = SubscriptionIn(**BASE, where=where, activities=["Boulangerie"], rating_at_most=3)
    assert spec.to_subscription("s").filter == Filter(
        max_rating=3, activities=frozenset({"Boulangerie"}),
        where=And((Range("rating", gte=3), In("activity", ("Restaurant", "Traiteur")))))
    assert spec.where == {"and": [{"field": "rating", "gte": 3},
                                  {"field": "activity", "in": ["Restaurant", "Traiteur"]}]}


@pytest.mark.parametrize(("where", "message"), [
    ("rating >=", "where: at column 10: expected a value"),
    ({"or": [{"field": "kind", "eq": "downgrade"}, {"field": "rating", "in": 4}]}, "or[1].in: expected a list"),
    (4, "expected a condition as text or as a JSON object"),
])
def test_bad_where_is_an_error_on_the_field(where: Any, message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        SubscriptionIn(**BASE, where=where)
    [error] = raised.value.errors()
    assert error["loc"] == ("where",)
    assert message in error["msg"]


@pytest.mark.parametrize(("fields", "loc"), [({"rating_at_most": 5}, ("rating_at_most",)),
                                             ({"activities": [""]}, ("activities", 0))])
def test_bad_activities_and_ceiling(fields: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        SubscriptionIn(**BASE, **fields)
    assert raised.value.errors()[0]["loc"][:len(loc)] == loc


def test_a_patch_keeps_the_where_condition() -> None:
    current = SubscriptionIn(**BASE, where="kind = downgrade", activities=["Restaurant"],
                             rating_at_most=2).to_subscription("s")
    after = patched(current, {"label": "renamed"})
    assert after.filter == current.filter
    assert after.filter.where == Eq("kind", "downgrade")
