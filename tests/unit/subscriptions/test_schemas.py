"""Subscription input validation: good input becomes a core Subscription, bad input a precise error."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from core.geo import AdminArea, BBox, Circle, Everywhere, Point, Polygon
from subscriptions.schemas import SubscriptionIn, parse_distance, parse_latlon

SQUARE = {"type": "Polygon", "coordinates": [[[2.3, 48.8], [2.4, 48.8], [2.4, 48.9], [2.3, 48.9], [2.3, 48.8]]]}


@pytest.mark.parametrize(("text", "metres"), [("1km", 1000), ("1.5 km", 1500), ("800m", 800), ("250", 250),
                                              (" 2 KM ", 2000), (300, 300)])
def test_distances(text: str | float, metres: float) -> None:
    assert parse_distance(text) == metres


@pytest.mark.parametrize("text", ["", "km", "1 mile", "-1km", "1,5km"])
def test_bad_distances(text: str) -> None:
    with pytest.raises(ValueError, match="not a distance"):
        parse_distance(text)


def test_latlon() -> None:
    assert parse_latlon("48.85, 2.35") == (48.85, 2.35)
    with pytest.raises(ValueError, match="out of range"):
        parse_latlon("91,0")
    with pytest.raises(ValueError, match="expected LAT,LON"):
        parse_latlon("48.85")


@pytest.mark.parametrize(("fields", "area"), [
    ({"near": "48.8566,2.3522", "radius_m": "1km"}, Circle(Point(48.8566, 2.3522), 1000)),
    ({"commune": "75056"}, AdminArea("commune", "75056")),
    ({"commune": "2A004"}, AdminArea("commune", "2A004")),
    ({"postcode": "69001"}, AdminArea("postcode", "69001")),
    ({"departement": "2B"}, AdminArea("departement", "2B")),
    ({"departement": "974"}, AdminArea("departement", "974")),
    ({"region": "84"}, AdminArea("region", "84")),
    ({"bbox": (48.8, 2.3, 48.9, 2.4)}, BBox(48.8, 2.3, 48.9, 2.4)),
    ({"polygon": SQUARE}, Polygon.from_geojson(SQUARE)),
    ({"everywhere": True}, Everywhere()),
])
def test_each_area(fields: dict[str, Any], area: object) -> None:
    sub = SubscriptionIn(to="console://", **fields).to_subscription("s1")
    assert sub.area == area
    assert sub.id == "s1"


def test_filters_lang_and_secret() -> None:
    sub = SubscriptionIn(to="webhook+https://x.example/h", everywhere=True, rating_at_least=4,
                         kinds=frozenset({"new_inspection", "downgrade"}), lang="en",
                         secret="whsec_" + "A" * 32).to_subscription("s")
    assert sub.filter.min_rating == 4
    assert sub.filter.kinds == {"new_inspection", "downgrade"}
    assert (sub.lang, sub.secret) == ("en", "whsec_" + "A" * 32)


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "give exactly one area"),
    ({"everywhere": True, "commune": "75056"}, "give exactly one area"),
    ({"near": "48.85,2.35"}, "near and radius go together"),
    ({"near": "48.85,2.35", "radius_m": "500 km"}, "less than or equal to 100000"),
    ({"commune": "7505"}, "String should match pattern"),
    ({"everywhere": True, "rating_at_least": 5}, "less than or equal to 4"),
    ({"everywhere": True, "kinds": {"closure"}}, "unknown kind(s) closure"),
    ({"everywhere": True, "lang": "de"}, "Input should be 'fr' or 'en'"),
    ({"everywhere": True, "secret": "hunter2"}, "String should match pattern"),
    ({"everywhere": True, "colour": "red"}, "Extra inputs are not permitted"),
])
def test_bad_input_gets_a_precise_message(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SubscriptionIn(to="console://", **fields)
    assert message in str(info.value)
