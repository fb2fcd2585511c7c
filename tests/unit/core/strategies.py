"""Hypothesis strategies over small key, entity and code spaces, so that collisions (and so changes) are common."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from hypothesis import strategies as st

from core.filters import And, Contains, Eq, Exists, In, Not, Or, Predicate, Range
from core.geo import (
    ADMIN_LEVELS,
    EARTH_RADIUS_M,
    AdminArea,
    AdminCodes,
    Area,
    BBox,
    Circle,
    Everywhere,
    Point,
    Polygon,
)
from core.model import Change, Filter, Kind, Op, Record, Subscription, change_id
from core.profiles import ALIMCONFIANCE, GENERIC, RATING_LABELS, Profile
from tests.unit.core.factories import AT, LABEL, record

KEYS = tuple(f"k{i}" for i in range(8))
ENTITIES = ("e0", "e1", "e2")
SUB_IDS = tuple(f"s{i}" for i in range(8))
KINDS = tuple(k.value for k in Kind)

iso_dates = st.dates(date(2023, 1, 1), date(2025, 12, 31)).map(date.isoformat)
labels = st.sampled_from([names["fr"] for names in RATING_LABELS.values()])
generic_values = st.integers(0, 3) | st.text("ab", max_size=2)


def inspection_fields() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.sampled_from(("Chez Paul", "Le Zinc")), "date_inspection": iso_dates, LABEL: labels,
         "date_extraction": iso_dates},
        optional={"activity": st.sampled_from(("Restaurant", "Boulangerie"))},
    )


def generic_fields(values: st.SearchStrategy[Any] = generic_values) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from("abc"), values, max_size=3)


@st.composite
def records_for(draw: st.DrawFn, profile: Profile, key: str, values: st.SearchStrategy[Any] = generic_values) -> Record:
    if profile is ALIMCONFIANCE:
        return record(profile, key, draw(inspection_fields()), group=draw(st.sampled_from(ENTITIES)))
    return record(profile, key, draw(generic_fields(values)))


@st.composite
def states(draw: st.DrawFn, profile: Profile, values: st.SearchStrategy[Any] = generic_values) -> dict[str, Record]:
    keys = draw(st.sets(st.sampled_from(KEYS)))
    return {k: draw(records_for(profile, k, values)) for k in sorted(keys)}


@st.composite
def transitions(draw: st.DrawFn, profile: Profile,
                values: st.SearchStrategy[Any] = generic_values) -> tuple[dict[str, Record], dict[str, Record]]:
    """(previous, snapshot); some snapshot rows are the previous row unchanged, or changed only in volatile fields."""
    previous = draw(states(profile, values))
    snapshot = draw(states(profile, values))
    for key, old in previous.items():
        if draw(st.booleans()):
            fields = {**old.fields, "date_extraction": draw(iso_dates)} if profile.volatile else old.fields
            snapshot[key] = record(profile, key, dict(fields), group=old.group)
    return previous, snapshot


profiles = st.sampled_from((ALIMCONFIANCE, GENERIC))

# -- geo ---------------------------------------------------------------------------------------------------------

# Most points fall in a small French region so areas and points meet; the rest go anywhere, poles included.
france = st.builds(Point, st.floats(43.0, 49.0), st.floats(-1.0, 7.0))
anywhere = st.builds(Point, st.floats(-90.0, 90.0), st.floats(-180.0, 180.0))
points = st.one_of(france, france, anywhere)
radii = st.one_of(st.floats(1.0, 50_000.0), st.floats(1.0, 1_000_000.0), st.just(1_000_000.0))


def destination(origin: Point, bearing_deg: float, distance_m: float) -> Point:
    """The point `distance_m` from `origin` along the great circle leaving it at `bearing_deg`."""
    d, theta = distance_m / EARTH_RADIUS_M, math.radians(bearing_deg)
    phi1, lmb1 = math.radians(origin.lat), math.radians(origin.lon)
    phi2 = math.asin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * math.cos(theta))
    dlmb = math.atan2(math.sin(theta) * math.sin(d) * math.cos(phi1), math.cos(d) - math.sin(phi1) * math.sin(phi2))
    lmb2 = lmb1 + dlmb
    lon = (math.degrees(lmb2) + 540.0) % 360.0 - 180.0
    return Point(max(-90.0, min(90.0, math.degrees(phi2))), max(-180.0, min(180.0, lon)))


circles = st.builds(Circle, points, radii)


@st.composite
def bboxes(draw: st.DrawFn) -> BBox:
    corner = draw(points)
    dlat, dlon = draw(st.floats(0.0, 5.0)), draw(st.floats(0.0, 5.0))
    return BBox(corner.lat, corner.lon, min(90.0, corner.lat + dlat), min(180.0, corner.lon + dlon))


@st.composite
def rings(draw: st.DrawFn, center: Point, max_deg: float) -> tuple[tuple[float, float], ...]:
    """A star-shaped (so simple) closed ring around `center`, (lon, lat) order."""
    n = draw(st.integers(3, 7))
    angles = sorted(draw(st.lists(st.floats(0.0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n, unique=True)))
    radii_deg = draw(st.lists(st.floats(0.01, max_deg), min_size=n, max_size=n))
    ring = [(_clamp(center.lon + r * math.cos(a), 180.0), _clamp(center.lat + r * math.sin(a), 90.0))
            for a, r in zip(angles, radii_deg, strict=True)]
    return (*ring, ring[0])


def _clamp(value: float, bound: float) -> float:
    return max(-bound, min(bound, value))


@st.composite
def polygons(draw: st.DrawFn) -> Polygon:
    parts = []
    for _ in range(draw(st.integers(1, 2))):
        center = draw(france)
        outer = draw(rings(center, 2.0))
        holes = [draw(rings(center, 0.3))] if draw(st.booleans()) else []
        parts.append((outer, *holes))
    return Polygon(tuple(parts))


admin_codes = st.builds(
    AdminCodes,
    commune=st.sampled_from((None, "75056", "69123")),
    postcode=st.sampled_from((None, "75001", "69001")),
    departement=st.sampled_from((None, "75", "69")),
    region=st.sampled_from((None, "11", "84")),
)


@st.composite
def admin_areas(draw: st.DrawFn) -> AdminArea:
    level = draw(st.sampled_from(ADMIN_LEVELS))
    codes = {"commune": ("75056", "69123"), "postcode": ("75001", "69001"), "departement": ("75", "69"),
             "region": ("11", "84")}
    return AdminArea(level, draw(st.sampled_from(codes[level])))


areas: st.SearchStrategy[Area] = st.one_of(circles, bboxes(), polygons(), admin_areas(), st.just(Everywhere()))

FIELDS = ("name", "activity", "rating", "kind", "dataset", "op", "changed", "missing")
scalars = st.one_of(st.sampled_from(("k1", "Restaurant", "restaurant", "Boulangerie", "downgrade", "alimconfiance",
                                     "created", "2025-03-01", "Très")), st.integers(0, 5),
                    st.floats(0.0, 5.0).map(lambda f: round(f, 2)))
leaves: st.SearchStrategy[Predicate] = st.one_of(
    st.builds(Eq, st.sampled_from(FIELDS), scalars),
    st.builds(In, st.sampled_from(FIELDS), st.lists(scalars, min_size=1, max_size=3).map(tuple)),
    st.builds(Range, st.sampled_from(FIELDS), gte=st.none() | scalars, lte=st.none() | scalars).filter(
        lambda r: r.gte is not None or r.lte is not None),
    st.builds(Range, st.sampled_from(FIELDS), gt=scalars),
    st.builds(Contains, st.sampled_from(FIELDS), st.sampled_from(("k", "rest", "TRES", "1"))),
    st.builds(Exists, st.sampled_from(FIELDS)),
)
predicates: st.SearchStrategy[Predicate] = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3).map(lambda ps: And(tuple(ps))),
                            st.lists(inner, min_size=1, max_size=3).map(lambda ps: Or(tuple(ps))),
                            st.builds(Not, inner)),
    max_leaves=6,
)

filters = st.builds(
    Filter,
    datasets=st.frozensets(st.sampled_from(("alimconfiance", "other")), max_size=1),
    kinds=st.frozensets(st.sampled_from(KINDS), max_size=2),
    min_rating=st.none() | st.integers(1, 4),
    max_rating=st.none() | st.none() | st.integers(1, 4),
    activities=st.frozensets(st.sampled_from(("restaurant", "Boulangerie")), max_size=1) | st.just(frozenset()),
    where=st.none() | st.none() | predicates,
)


def subscriptions() -> st.SearchStrategy[Subscription]:
    return st.builds(Subscription, id=st.sampled_from(SUB_IDS), area=areas, destination=st.just("slack://T0/C0"),
                     filter=filters, paused=st.booleans() | st.just(False),
                     disabled_reason=st.none() | st.none() | st.just("slack channel_not_found"))


@st.composite
def located_records(draw: st.DrawFn, key: str) -> Record:
    point = draw(st.none() | points)
    rating = draw(st.none() | st.integers(1, 4))
    fields = {"name": key, "activity": draw(st.sampled_from(("Restaurant", "Restaurant|Boulangerie", "")))}
    return Record("alimconfiance", key, fields, key, point=point, admin=draw(admin_codes), rating=rating)


@st.composite
def changes(draw: st.DrawFn) -> Change:
    """Any change: created, removed, updated in place, or moved (before and after in different places)."""
    op = draw(st.sampled_from(Op))
    before = None if op is Op.CREATED else draw(located_records("k1"))
    after = None if op is Op.REMOVED else draw(located_records("k1"))
    if before is not None and after is not None and draw(st.booleans()):
        after = Record(after.dataset, after.key, after.fields, after.fingerprint, before.point, before.admin,
                       rating=after.rating)
    kinds = tuple(draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True)))
    dataset = draw(st.sampled_from(("alimconfiance", "other")))
    cid = change_id(dataset, "k1", op, before=before, after=after, version="v1")
    return Change(cid, dataset, "k1", op, kinds, before, after, (), AT, "v1")
