"""match: the grid index must equal brute force, whatever the subscriptions and the change."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.filters import Contains, Eq
from core.geo import EARTH_RADIUS_M, AdminArea, AdminCodes, Area, BBox, Circle, Everywhere, Point, Polygon
from core.index import SubscriptionIndex
from core.match import Matcher, brute_force, concerns
from core.model import Change, Filter, Subscription
from tests.unit.core import strategies as s
from tests.unit.core.factories import LYON, PARIS, PARIS_ADMIN, created, inspection, removed, subscription, updated

PROPERTY = settings(deadline=None, max_examples=300)


@dataclass(frozen=True, slots=True)
class Options:
    """SubscriptionIndex thresholds, small enough that tests reach the main table and the renumbering; the compiled
    kernel (core/index_kernel.py) or numpy."""

    merge_at: int
    compact_at: int
    compiled: bool

    def index(self, subs: list[Subscription]) -> SubscriptionIndex:
        return SubscriptionIndex(subs, merge_at=self.merge_at, compact_at=self.compact_at, compiled=self.compiled)


options = st.builds(Options, merge_at=st.sampled_from((0, 3, 4096)), compact_at=st.sampled_from((0, 2, 1024)),
                    compiled=st.booleans())
Op = tuple[str, Subscription | str | list[Change]]
operations: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("add"), s.subscriptions()),
    st.tuples(st.just("remove"), st.sampled_from(s.SUB_IDS)),
    st.tuples(st.just("match"), st.lists(s.changes(), min_size=1, max_size=3)),
)


def latest(subs: list[Subscription]) -> dict[str, Subscription]:
    """What an index holds after adding `subs` in order: the last subscription of each id."""
    return {sub.id: sub for sub in subs}


def assert_like_brute_force(index: SubscriptionIndex, held: dict[str, Subscription], changes: list[Change]) -> None:
    expected = [brute_force(held.values(), change) for change in changes]
    assert index.match_many(changes) == expected
    assert [index.match(change) for change in changes] == expected


@PROPERTY
@given(subs=st.lists(s.subscriptions(), max_size=12), changes=st.lists(s.changes(), min_size=1, max_size=4),
       opts=options)
def test_index_equals_brute_force(subs: list[Subscription], changes: list[Change], opts: Options) -> None:
    index = opts.index(subs)
    held = latest(subs)
    assert len(index) == len(held)
    assert_like_brute_force(index, held, changes)


@PROPERTY
@given(start=st.lists(s.subscriptions(), max_size=8), ops=st.lists(operations, max_size=20), opts=options)
def test_index_equals_brute_force_through_adds_and_removes(start: list[Subscription], ops: list[Op],
                                                           opts: Options) -> None:
    index = opts.index(start)
    held = latest(start)
    for op, arg in ops:
        if op == "add":
            assert isinstance(arg, Subscription)
            index.add(arg)
            held[arg.id] = arg
        elif op == "remove":
            assert isinstance(arg, str)
            index.remove(arg)
            held.pop(arg, None)
        else:
            assert isinstance(arg, list)
            assert_like_brute_force(index, held, arg)
        assert len(index) == len(held)
        assert all(sid in index for sid in held)


@PROPERTY
@given(circle=s.circles, bearing=st.floats(0.0, 360.0), fraction=st.floats(0.99, 1.0),
       others=st.lists(s.subscriptions(), max_size=6), opts=options)
def test_index_equals_brute_force_on_the_rim_of_circles(
    circle: Circle, bearing: float, fraction: float, others: list[Subscription], opts: Options
) -> None:
    """Random points rarely land on an area's edge, where a too-small bounding box would lose them."""
    subs = [*others, subscription("rim", circle)]
    point = s.destination(circle.center, bearing, circle.radius_m * fraction)
    change = created(inspection("k", point=point))
    assert opts.index(subs).match(change) == brute_force(latest(subs).values(), change)


@PROPERTY
@given(subs=st.lists(s.subscriptions(), max_size=12), opts=options)
def test_removing_everything_leaves_an_empty_index(subs: list[Subscription], opts: Options) -> None:
    index = opts.index(subs)
    for sub in subs:
        index.remove(sub.id)
    assert len(index) == 0
    assert index.match(created(NEAR_PARIS)) == []


def test_the_index_is_a_matcher() -> None:
    index = SubscriptionIndex()
    matcher: Matcher = index
    assert len(matcher) == 0
    matcher.remove("never-added")
    assert "never-added" not in index
    assert matcher.match_many([]) == []


NEAR_PARIS = inspection("k")
IN_LYON = inspection("k", point=LYON, admin=AdminCodes(commune="69123", departement="69", region="84"),
                     address="2 place Bellecour", postcode="69002", commune="Lyon")
NOWHERE = inspection("k", point=None, admin=PARIS_ADMIN)


@pytest.mark.parametrize(
    ("area", "change", "matched"),
    [
        pytest.param(Circle(PARIS, 5_000), created(NEAR_PARIS), True, id="circle"),
        pytest.param(Circle(PARIS, 5_000), created(IN_LYON), False, id="circle-elsewhere"),
        pytest.param(Circle(PARIS, 1_000_000), created(IN_LYON), True, id="huge-circle"),
        pytest.param(BBox(48, 2, 49, 3), created(NEAR_PARIS), True, id="bbox"),
        pytest.param(Polygon(((((2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 48.0)),),)), created(NEAR_PARIS),
                     False, id="polygon-not-around-the-point"),
        pytest.param(AdminArea("departement", "75"), created(NOWHERE), True, id="admin-without-point"),
        pytest.param(Circle(PARIS, 5_000), created(NOWHERE), False, id="circle-without-point"),
        pytest.param(Everywhere(), created(NOWHERE), True, id="everywhere"),
        pytest.param(Circle(LYON, 5_000), updated(NEAR_PARIS, IN_LYON), True, id="moved-in"),
        pytest.param(Circle(PARIS, 5_000), updated(NEAR_PARIS, IN_LYON), True, id="moved-out"),
        pytest.param(AdminArea("region", "11"), updated(NEAR_PARIS, IN_LYON), True, id="moved-out-of-region"),
        pytest.param(Circle(PARIS, 5_000), removed(NEAR_PARIS), True, id="removed-where-it-was"),
    ],
)
def test_which_areas_a_change_concerns(area: Area, change: Change, matched: bool) -> None:
    sub = subscription("s1", area)
    assert concerns(sub, change) is matched
    assert SubscriptionIndex([sub]).match(change) == ([sub] if matched else [])


@pytest.mark.parametrize(
    ("flt", "change", "matched"),
    [
        (Filter(), created(inspection("k", rating=1)), True),
        (Filter(datasets=frozenset({"alimconfiance"})), created(NEAR_PARIS), True),
        (Filter(datasets=frozenset({"other"})), created(NEAR_PARIS), False),
        (Filter(kinds=frozenset({"new_inspection"})), created(NEAR_PARIS), True),
        (Filter(kinds=frozenset({"downgrade"})), created(NEAR_PARIS), False),
        (Filter(kinds=frozenset({"downgrade"})), updated(inspection("k", rating=1), inspection("k", rating=4)), True),
        (Filter(min_rating=4), created(inspection("k", rating=4)), True),
        (Filter(min_rating=4), created(inspection("k", rating=3)), False),
        (Filter(min_rating=1), created(inspection("k", rating=None)), False),
        (Filter(min_rating=3), updated(inspection("k", rating=4), inspection("k", rating=1)), False),  # rated now
        (Filter(min_rating=3), removed(inspection("k", rating=4)), True),  # rated as last seen
    ],
)
def test_filters(flt: Filter, change: Change, matched: bool) -> None:
    sub = subscription("s1", Everywhere(), filter=flt)
    assert concerns(sub, change) is matched


@pytest.mark.parametrize(("paused", "reason"), [(True, None), (False, "slack channel_not_found")])
def test_a_paused_or_disabled_subscription_matches_nothing(paused: bool, reason: str | None) -> None:
    sub = replace(subscription("s1", Everywhere()), paused=paused, disabled_reason=reason)
    assert not concerns(sub, created(NEAR_PARIS))
    assert SubscriptionIndex([sub]).match(created(NEAR_PARIS)) == []
    assert SubscriptionIndex([replace(sub, paused=False, disabled_reason=None)]).match(created(NEAR_PARIS))


def test_matches_come_sorted_by_subscription_id() -> None:
    subs = [subscription(sid, area) for sid, area in
            (("c", Everywhere()), ("a", Circle(PARIS, 1_000)), ("b", AdminArea("commune", "75056")))]
    assert [sub.id for sub in SubscriptionIndex(subs).match(created(NEAR_PARIS))] == ["a", "b", "c"]


def test_re_adding_an_id_replaces_its_area() -> None:
    index = SubscriptionIndex([subscription("s1", Circle(PARIS, 1_000))])
    index.add(subscription("s1", AdminArea("departement", "69")))
    assert len(index) == 1
    assert index.match(created(NEAR_PARIS)) == []
    assert [sub.id for sub in index.match(created(IN_LYON))] == ["s1"]


def test_a_circle_near_the_pole_or_the_antimeridian_still_matches() -> None:
    polar = subscription("polar", Circle(Point(89.5, 0.0), 200_000))
    dateline = subscription("dateline", Circle(Point(-14.0, 179.9), 50_000))
    index = SubscriptionIndex([polar, dateline])
    assert index.match(created(inspection("k", point=Point(89.9, 170.0)))) == [polar]
    assert index.match(created(inspection("k", point=Point(-14.0, -179.9)))) == [dateline]


def test_a_field_filter_is_decided_per_change_even_when_many_changes_share_their_facts() -> None:
    """A snapshot's slow filters are decided once per distinct (filter, facts): changes alike in everything a filter
    reads share a verdict, and a field it reads (here `name`, or a list value that cannot be hashed) tells them
    apart."""
    pizza = subscription("pizza", Everywhere(), filter=Filter(where=Contains("name", "pizza")))
    bakery = subscription("bakery", Everywhere(), filter=Filter(activities=frozenset({"boulangerie"})))
    changes = [created(inspection(f"k{i}", name=name, activity=activity))
               for i, (name, activity) in enumerate((("Pizza Roma", "Restaurant"), ("Chez Paul", "Restaurant"),
                                                     ("Pizza Roma", "Boulangerie"), (["Pizza", "Roma"], "Restaurant"),
                                                     (["Chez", "Paul"], "Restaurant")))]
    found = SubscriptionIndex([pizza, bakery]).match_many(changes)
    assert [[sub.id for sub in subs] for subs in found] == [["pizza"], [], ["bakery", "pizza"], ["pizza"], []]
    assert pizza.filter.fields_read == {"name"}
    assert bakery.filter.fields_read == {"activity"}
    assert Filter(where=Eq("rating", 4)).fields_read == frozenset()  # a fact of the change, not a record field


def test_points_a_hair_from_the_rim_get_core_geos_verdict_at_every_latitude_and_size() -> None:
    """The kernel decides most circle candidates by bounds on the haversine term, without trigonometry: points at
    relative distances from 1e-12 to 5% of the rim, circles from 1 m to 300 km, any latitude, all get the verdict
    core.geo gives."""
    rng = random.Random(3)
    subs: list[Subscription] = []
    changes: list[Change] = []
    for i in range(400):
        center = Point(rng.uniform(-89.0, 89.0), rng.uniform(-180.0, 180.0))
        radius = math.exp(rng.uniform(0.0, math.log(300_000.0)))
        subs.append(subscription(f"s{i}", Circle(center, radius)))
        for offset in (0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3, 0.05, -0.05):
            at = destination(center, radius * (1 + offset), rng.uniform(0.0, 2 * math.pi))
            changes.append(created(inspection(f"k{len(changes)}", point=at, admin=AdminCodes())))
    found = SubscriptionIndex(subs, compiled=True).match_many(changes)
    assert found == [brute_force(subs, change) for change in changes]
    assert 0 < sum(map(len, found)) < len(changes)


def destination(start: Point, distance_m: float, bearing: float) -> Point:
    """The point `distance_m` from `start` along `bearing` (radians) on the sphere core.geo uses."""
    d, phi1, lmb1 = distance_m / EARTH_RADIUS_M, math.radians(start.lat), math.radians(start.lon)
    phi2 = math.asin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * math.cos(bearing))
    lmb2 = lmb1 + math.atan2(math.sin(bearing) * math.sin(d) * math.cos(phi1),
                             math.cos(d) - math.sin(phi1) * math.sin(phi2))
    return Point(math.degrees(phi2), (math.degrees(lmb2) + 540.0) % 360.0 - 180.0)
