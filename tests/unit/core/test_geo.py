"""Geometry: distances, areas, GeoJSON and location parsing."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import SubscriptionError
from core.geo import (
    ADMIN_LEVELS,
    EARTH_RADIUS_M,
    AdminArea,
    AdminCodes,
    AdminLevel,
    BBox,
    Circle,
    Everywhere,
    Point,
    Polygon,
    haversine_m,
    parse_point,
)
from tests.unit.core import strategies as s
from tests.unit.core.factories import LYON, PARIS, PARIS_ADMIN

PROPERTY = settings(deadline=None, max_examples=300)
NEW_YORK = Point(40.7128, -74.0060)


@pytest.mark.parametrize(
    ("a", "b", "km"),
    [
        (PARIS, LYON, 392.0),
        (PARIS, NEW_YORK, 5837.0),
        (Point(0, 0), Point(0, 1), 111.195),
        (Point(0, 0), Point(0, 180), math.pi * EARTH_RADIUS_M / 1000),
        (Point(90, 0), Point(-90, 0), math.pi * EARTH_RADIUS_M / 1000),
        (Point(0, 179.5), Point(0, -179.5), 111.195),
    ],
)
def test_haversine_known_distances(a: Point, b: Point, km: float) -> None:
    assert haversine_m(a, b) / 1000 == pytest.approx(km, rel=0.01)


@given(s.anywhere, s.anywhere)
def test_haversine_is_a_symmetric_bounded_distance(a: Point, b: Point) -> None:
    assert haversine_m(a, b) == pytest.approx(haversine_m(b, a), abs=1e-6)
    assert 0.0 <= haversine_m(a, b) <= math.pi * EARTH_RADIUS_M + 1e-6
    assert haversine_m(a, a) == 0.0


@pytest.mark.parametrize(("lat", "lon"), [(90.1, 0), (-90.1, 0), (0, 180.1), (0, -180.1), (math.nan, 0)])
def test_point_rejects_out_of_range_coordinates(lat: float, lon: float) -> None:
    with pytest.raises(ValueError, match="out of range"):
        Point(lat, lon)


# -- Circle -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0.0, -1.0, 1_000_000.1, math.inf, math.nan])
def test_circle_radius_is_bounded(radius: float) -> None:
    with pytest.raises(SubscriptionError, match="radius"):
        Circle(PARIS, radius)


def test_circle_contains_by_great_circle_distance() -> None:
    circle = Circle(PARIS, 400_000)
    assert circle.contains(LYON)
    assert circle.contains(PARIS)
    assert not Circle(PARIS, 390_000).contains(LYON)
    assert not circle.contains(None)
    assert Circle(PARIS, 1_000_000).contains(LYON, PARIS_ADMIN)


def test_circle_bbox_is_tight_around_a_small_circle() -> None:
    box = Circle(Point(0.0, 0.0), 111_195.0).bbox
    assert (box.south, box.west, box.north, box.east) == pytest.approx((-1.0, -1.0, 1.0, 1.0), abs=1e-3)


@pytest.mark.parametrize(
    "circle",
    [
        pytest.param(Circle(Point(89.0, 10.0), 500_000), id="north-pole"),
        pytest.param(Circle(Point(-90.0, 0.0), 10), id="centred-on-the-south-pole"),
        pytest.param(Circle(Point(0.0, 179.9), 100_000), id="east-of-the-antimeridian"),
        pytest.param(Circle(Point(0.0, -179.9), 100_000), id="west-of-the-antimeridian"),
    ],
)
def test_circle_bbox_spans_every_longitude_when_it_holds_a_pole_or_crosses_180(circle: Circle) -> None:
    assert (circle.bbox.west, circle.bbox.east) == (-180.0, 180.0)


def test_circle_bbox_holds_the_widest_point_of_a_high_latitude_circle() -> None:
    circle = Circle(Point(60.0, 10.0), 1_000_000)
    rim = [s.destination(circle.center, tenth / 10, circle.radius_m * 0.9999) for tenth in range(1800)]
    widest = max(rim, key=lambda p: p.lon)
    assert widest.lat > circle.center.lat  # a spherical cap is widest poleward of its centre
    assert circle.contains(widest)
    assert circle.bbox.contains(widest)


@PROPERTY
@given(circle=s.circles, bearing=st.floats(0.0, 360.0), fraction=st.floats(0.0, 1.0), far=s.anywhere)
def test_a_circles_bbox_contains_every_point_the_circle_contains(
    circle: Circle, bearing: float, fraction: float, far: Point
) -> None:
    near = s.destination(circle.center, bearing, circle.radius_m * fraction)
    for point in (near, far):
        if circle.contains(point):
            assert circle.bbox.contains(point), (circle, point, circle.bbox)


# -- BBox ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        (PARIS, True),
        (Point(48.0, 2.0), True),  # corners are inside
        (Point(49.0, 3.0), True),
        (Point(47.99, 2.5), False),
        (Point(48.5, 3.01), False),
        (None, False),
    ],
)
def test_bbox_contains(point: Point | None, inside: bool) -> None:
    box = BBox(48.0, 2.0, 49.0, 3.0)
    assert box.contains(point, PARIS_ADMIN) is inside
    assert box.bbox is box


@pytest.mark.parametrize(
    "corners",
    [
        pytest.param((49.0, 2.0, 48.0, 3.0), id="south-above-north"),
        pytest.param((48.0, 3.0, 49.0, 2.0), id="west-east-of-east"),
        pytest.param((-91.0, 0.0, 0.0, 1.0), id="latitude-out-of-range"),
        pytest.param((0.0, 0.0, 1e308, 1.0), id="huge"),
        pytest.param((0.0, -181.0, 1.0, 1.0), id="longitude-out-of-range"),
        pytest.param((math.nan, 0.0, 1.0, 1.0), id="nan"),
    ],
)
def test_bbox_rejects_inverted_or_out_of_range_corners(corners: tuple[float, float, float, float]) -> None:
    with pytest.raises(SubscriptionError, match="bbox"):
        BBox(*corners)


def test_a_degenerate_bbox_is_a_point() -> None:
    assert BBox(48.0, 2.0, 48.0, 2.0).contains(Point(48.0, 2.0))


# -- Polygon ------------------------------------------------------------------------------------------------------

SQUARE = ((2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 49.0), (2.0, 48.0))
HOLE = ((2.4, 48.4), (2.6, 48.4), (2.6, 48.6), (2.4, 48.6), (2.4, 48.4))
AROUND_LYON = ((4.5, 45.5), (5.0, 45.5), (5.0, 46.0), (4.5, 46.0), (4.5, 45.5))


@pytest.mark.parametrize(
    ("polygon", "point", "inside"),
    [
        (Polygon(((SQUARE,),)), Point(48.5, 2.5), True),
        (Polygon(((SQUARE,),)), LYON, False),
        (Polygon(((SQUARE, HOLE),)), Point(48.5, 2.5), False),
        (Polygon(((SQUARE, HOLE),)), Point(48.2, 2.2), True),
        (Polygon(((SQUARE,), (AROUND_LYON,))), LYON, True),
        (Polygon(((SQUARE,), (AROUND_LYON,))), Point(48.5, 2.5), True),
        (Polygon(((SQUARE,), (AROUND_LYON,))), Point(47.0, 3.5), False),  # between the parts, inside the bbox
        (Polygon(((SQUARE,),)), None, False),
    ],
)
def test_polygon_contains(polygon: Polygon, point: Point | None, inside: bool) -> None:
    assert polygon.contains(point) is inside


def test_polygon_bbox_covers_its_outer_rings() -> None:
    assert Polygon(((SQUARE,), (AROUND_LYON,))).bbox == BBox(45.5, 2.0, 49.0, 5.0)


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Polygon", "coordinates": [[list(p) for p in SQUARE]]},
        {"type": "Polygon", "coordinates": [[list(p) for p in SQUARE], [list(p) for p in HOLE]]},
        {"type": "MultiPolygon", "coordinates": [[[list(p) for p in SQUARE]], [[list(p) for p in AROUND_LYON]]]},
    ],
)
def test_geojson_round_trip(geometry: dict[str, Any]) -> None:
    polygon = Polygon.from_geojson(geometry)
    assert polygon.to_geojson() == geometry
    assert Polygon.from_geojson(polygon.to_geojson()) == polygon


def test_from_geojson_accepts_integer_and_3d_positions() -> None:
    polygon = Polygon.from_geojson({"type": "Polygon", "coordinates": [[[2, 48, 35], [3, 48, 0], [3, 49, 0],
                                                                         [2, 48, 35]]]})
    assert polygon.polygons == ((((2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 48.0)),),)


def test_a_single_part_multipolygon_comes_back_as_a_polygon() -> None:
    polygon = Polygon.from_geojson({"type": "MultiPolygon", "coordinates": [[[list(p) for p in SQUARE]]]})
    assert polygon.to_geojson()["type"] == "Polygon"


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        ({"type": "Point", "coordinates": [2.0, 48.0]}, "unsupported"),
        ({"coordinates": [[list(p) for p in SQUARE]]}, "unsupported"),
        ({"type": "Polygon"}, "closed ring"),
        ({"type": "Polygon", "coordinates": []}, "closed ring"),
        ({"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [2, 48]]]}, "closed ring"),
        ({"type": "MultiPolygon", "coordinates": []}, "closed ring"),
        ({"type": "MultiPolygon", "coordinates": [[]]}, "closed ring"),
        ({"type": "MultiPolygon", "coordinates": [[[list(p) for p in SQUARE]], []]}, "closed ring"),
        ({"type": "Polygon", "coordinates": [[["x", "y"]] * 4]}, "invalid GeoJSON"),
        ({"type": "Polygon", "coordinates": [[[2.0]] * 4]}, "invalid GeoJSON"),
        ({"type": "Polygon", "coordinates": 5}, "invalid GeoJSON"),
        ({"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [3, 95], [2, 48]]]}, "bbox"),
    ],
)
def test_invalid_geojson_is_a_subscription_error(geometry: dict[str, Any], reason: str) -> None:
    with pytest.raises(SubscriptionError, match=reason):
        Polygon.from_geojson(geometry)


# -- AdminArea, Everywhere ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "code", "inside"),
    [
        ("commune", "75056", True),
        ("postcode", "75001", True),
        ("departement", "75", True),
        ("region", "11", True),
        ("departement", "69", False),
        ("region", "75", False),  # codes are compared within their level only
    ],
)
def test_admin_area_matches_codes_not_coordinates(level: AdminLevel, code: str, inside: bool) -> None:
    area = AdminArea(level, code)
    assert area.contains(None, PARIS_ADMIN) is inside
    assert area.contains(LYON, PARIS_ADMIN) is inside
    assert not area.contains(PARIS, None)
    assert not area.contains(PARIS, AdminCodes())
    assert area.bbox is None


def test_admin_codes_by_level() -> None:
    assert [PARIS_ADMIN.get(level) for level in ADMIN_LEVELS] == ["75056", "75001", "75", "11"]


@pytest.mark.parametrize(("level", "code", "reason"), [("city", "75", "unknown admin level"), ("region", " ", "empty")])
def test_admin_area_rejects_unknown_levels_and_empty_codes(level: str, code: str, reason: str) -> None:
    with pytest.raises(SubscriptionError, match=reason):
        AdminArea(level, code)  # type: ignore[arg-type]


@pytest.mark.parametrize(("point", "admin"), [(PARIS, PARIS_ADMIN), (None, None), (Point(-90, 180), AdminCodes())])
def test_everywhere_contains_everything(point: Point | None, admin: AdminCodes | None) -> None:
    assert Everywhere().contains(point, admin)
    assert Everywhere().bbox is None


# -- parse_point --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"lon": 2.3522, "lat": 48.8566}, PARIS),
        ({"lat": "48.8566", "lon": "2.3522"}, PARIS),
        ([48.8566, 2.3522], PARIS),
        ((48.8566, 2.3522), PARIS),
        ("48.8566,2.3522", PARIS),
        ("48.8566, 2.3522", PARIS),
        (" 48.8566 , 2.3522 ", PARIS),
        ("-21.1151,55.5364", Point(-21.1151, 55.5364)),
        (None, None),
        ("", None),
        ({}, None),
        ([], None),
    ],
)
def test_parse_point(value: object, expected: Point | None) -> None:
    assert parse_point(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "48.8566",
        "48.8566,",
        "abc,def",
        "48.8566;2.3522",
        [48.8566],
        [1, 2, 3],
        42,
        {"lat": "x", "lon": 2},
        "91,2",
        [48.0, 181.0],
        {"lat": 0, "lon": -200},
    ],
)
def test_parse_point_rejects_garbage_and_out_of_range(value: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the message varies with the source of the error)
        parse_point(value)


def test_parse_point_needs_both_keys_of_a_mapping() -> None:
    with pytest.raises(KeyError):
        parse_point({"lat": 48.0})
