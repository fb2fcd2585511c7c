"""Geometry on the WGS84 sphere: points, distances and the areas a subscription can watch.

Every area answers `contains(point, admin)` and knows its bounding box (`bbox`), which the
match index uses to bucket it. Admin areas match on codes only, so records without
coordinates (about 3-4% of Alim'Confiance rows) can still match them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from core.errors import SubscriptionError

EARTH_RADIUS_M = 6_371_008.8
_PAD_DEG = 1e-9  # ~0.1 mm: keeps rounding in haversine_m from putting a contained point outside its circle's bbox

AdminLevel = Literal["commune", "postcode", "departement", "region"]
ADMIN_LEVELS: tuple[AdminLevel, ...] = ("commune", "postcode", "departement", "region")


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"coordinates out of range: lat={self.lat} lon={self.lon}")


@dataclass(frozen=True, slots=True)
class AdminCodes:
    """Administrative codes of a place: INSEE commune, postcode, département, région."""

    commune: str | None = None
    postcode: str | None = None
    departement: str | None = None
    region: str | None = None

    def get(self, level: AdminLevel) -> str | None:
        value: str | None = getattr(self, level)
        return value


@dataclass(frozen=True, slots=True)
class BBox:
    south: float
    west: float
    north: float
    east: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.south <= self.north <= 90.0 and -180.0 <= self.west <= self.east <= 180.0):
            raise SubscriptionError(
                f"invalid bbox south={self.south} west={self.west} north={self.north} east={self.east}: need "
                "-90 <= south <= north <= 90 and -180 <= west <= east <= 180 (split a box that crosses 180°)"
            )

    def contains(self, point: Point | None, admin: AdminCodes | None = None) -> bool:
        return point is not None and self.south <= point.lat <= self.north and self.west <= point.lon <= self.east

    @property
    def bbox(self) -> BBox:
        return self


class Area(Protocol):
    """What a subscription watches."""

    def contains(self, point: Point | None, admin: AdminCodes | None) -> bool: ...

    @property
    def bbox(self) -> BBox | None: ...


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi, dlmb = phi2 - phi1, math.radians(b.lon - a.lon)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Circle:
    center: Point
    radius_m: float

    def __post_init__(self) -> None:
        if not 0 < self.radius_m <= 1_000_000:
            raise SubscriptionError(f"radius must be in (0, 1000 km], got {self.radius_m} m")

    def contains(self, point: Point | None, admin: AdminCodes | None = None) -> bool:
        return point is not None and haversine_m(self.center, point) <= self.radius_m

    @property
    def bbox(self) -> BBox:
        """The lat/lon box around the circle, padded by a hair.

        A spherical cap is widest poleward of its centre: its half-width in longitude is asin(sin d / cos lat),
        more than d / cos lat. A circle that holds a pole or crosses the 180° meridian spans every longitude.
        """
        d = self.radius_m / EARTH_RADIUS_M
        south = self.center.lat - math.degrees(d) - _PAD_DEG
        north = self.center.lat + math.degrees(d) + _PAD_DEG
        if south <= -90.0 or north >= 90.0:
            return BBox(max(-90.0, south), -180.0, min(90.0, north), 180.0)
        dlon = math.degrees(math.asin(min(1.0, math.sin(d) / math.cos(math.radians(self.center.lat))))) + _PAD_DEG
        west, east = self.center.lon - dlon, self.center.lon + dlon
        if west < -180.0 or east > 180.0:
            return BBox(south, -180.0, north, 180.0)
        return BBox(south, west, north, east)


Ring = tuple[tuple[float, float], ...]  # (lon, lat) pairs, GeoJSON order


def _in_ring(lon: float, lat: float, ring: Ring) -> bool:
    inside = False
    j = len(ring) - 1
    for i, (xi, yi) in enumerate(ring):
        xj, yj = ring[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class Polygon:
    """A GeoJSON Polygon or MultiPolygon: outer rings with optional holes, (lon, lat) order."""

    polygons: tuple[tuple[Ring, ...], ...]
    _bbox: BBox = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rings = [poly[0] if poly else () for poly in self.polygons]
        if not rings or any(len(r) < 4 for r in rings):
            raise SubscriptionError("a polygon needs at least one closed ring of 4 positions")
        lons = [p[0] for r in rings for p in r]
        lats = [p[1] for r in rings for p in r]
        object.__setattr__(self, "_bbox", BBox(min(lats), min(lons), max(lats), max(lons)))

    @classmethod
    def from_geojson(cls, geometry: dict[str, Any]) -> Polygon:
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        try:
            if kind == "Polygon":
                return cls((_rings(coords),))
            if kind == "MultiPolygon":
                return cls(tuple(_rings(poly) for poly in coords or ()))
        except (TypeError, ValueError, IndexError) as exc:
            raise SubscriptionError(f"invalid GeoJSON coordinates: {exc}") from exc
        raise SubscriptionError(f"unsupported GeoJSON geometry type: {kind!r}")

    def to_geojson(self) -> dict[str, Any]:
        as_lists = [[[list(p) for p in ring] for ring in poly] for poly in self.polygons]
        if len(as_lists) == 1:
            return {"type": "Polygon", "coordinates": as_lists[0]}
        return {"type": "MultiPolygon", "coordinates": as_lists}

    def contains(self, point: Point | None, admin: AdminCodes | None = None) -> bool:
        if point is None or not self._bbox.contains(point):
            return False
        return any(
            _in_ring(point.lon, point.lat, poly[0]) and not any(_in_ring(point.lon, point.lat, h) for h in poly[1:])
            for poly in self.polygons
        )

    @property
    def bbox(self) -> BBox:
        return self._bbox


def _rings(coords: Iterable[Sequence[Sequence[float]]] | None) -> tuple[Ring, ...]:
    return tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in coords or ())


@dataclass(frozen=True, slots=True)
class AdminArea:
    level: AdminLevel
    code: str

    def __post_init__(self) -> None:
        if self.level not in ADMIN_LEVELS:
            raise SubscriptionError(f"unknown admin level {self.level!r}; use one of {', '.join(ADMIN_LEVELS)}")
        if not self.code.strip():
            raise SubscriptionError("an admin code cannot be empty")

    def contains(self, point: Point | None, admin: AdminCodes | None) -> bool:
        return admin is not None and admin.get(self.level) == self.code

    @property
    def bbox(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Everywhere:
    def contains(self, point: Point | None, admin: AdminCodes | None) -> bool:
        return True

    @property
    def bbox(self) -> None:
        return None


def parse_point(value: object) -> Point | None:
    """Read a location as published: `{"lon","lat"}` (ODS v2.1), `[lat, lon]` (v1), `"lat,lon"` (CSV).

    Empty values give None; anything else unreadable raises ValueError.
    """
    if value is None or value in ("", {}, []):
        return None
    if isinstance(value, dict):
        return Point(float(value["lat"]), float(value["lon"]))
    if isinstance(value, list | tuple) and len(value) == 2:
        return Point(float(value[0]), float(value[1]))
    if isinstance(value, str):
        lat, _, lon = value.partition(",")
        if not lon.strip():
            raise ValueError(f"not a 'lat,lon' pair: {value!r}")
        return Point(float(lat), float(lon))
    raise ValueError(f"unreadable location: {value!r}")
