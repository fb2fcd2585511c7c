"""Matching changes against 10k / 100k / 1M subscriptions: core/index.py against three baselines, in one run.

    python bench/match.py [--quick] [--sizes 10000,100000,1000000] [--changes 20000] [--seed 7]
                          [--layouts cities,even]

Subscriptions: 85% circles of 200 m-5 km (log-uniform), 5% hexagons, 4.5% communes (synthetic codes, one per
0.05° cell) and 0.5% départements (one per 0.9° x 1.2° cell), 5% boxes; 30% filter kinds or a rating floor, 5%
have a `where` condition. Two layouts: `cities` puts them around 20 French cities weighted by population (centres
spread over the metro area, ~33 km sigma; a quarter evenly over France): a change in Paris concerns hundreds of
subscriptions at 1M, and the output dominates; `even` spreads them evenly over France, the setup issue 9's
reference figures were measured on (a few tens of matches per change). Changes: created inspections at points
drawn the same way, with their codes. `match` in the table is the mean number of subscriptions per change.
Measured, CPU time of this process (one core: numpy here runs single-threaded):

- build: SubscriptionIndex(subscriptions); bytes per subscription: what tracemalloc saw it keep;
- batch: match_pairs over all the changes (a snapshot); one-at-a-time: match(change), p50 / p99 wall time;
  both after one warm-up match (a process's first match loads the compiled kernel, or compiles it once);
- baselines on the circles alone (a narrower question, so the ratios flatter them): numpy brute force
  (haversine against every centre), shapely STRtree over the circles' boxes then the exact distance, and one
  Redis GEOSEARCH per change (FROMLONLAT BYRADIUS 5 km, then each circle's own radius) on $REDIS_URL
  (skipped when unset; a namespace of its own, deleted afterwards).

`--quick`: 10k subscriptions and 2k changes, a few seconds (the test suite runs it). Targets from issue 9 are
printed next to the 1M row. Prints a table; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.diff import diff_one
from core.filters import Eq, Range
from core.geo import AdminArea, AdminCodes, Area, BBox, Circle, Point, Polygon
from core.index import SubscriptionIndex
from core.model import Change, Filter, Record, Subscription
from core.profiles import ALIMCONFIANCE

TARGETS = {"batch/s": 300_000, "p99 µs": 10, "build s": 6, "B/sub": 600, "x STRtree": 5, "x Redis": 80}
# name, lat, lon, weight (roughly the metro population), departement, commune
CITIES = [("Paris", 48.857, 2.352, 11.0, "75", "75056"), ("Lyon", 45.764, 4.836, 2.3, "69", "69123"),
          ("Marseille", 43.296, 5.370, 1.9, "13", "13055"), ("Toulouse", 43.605, 1.444, 1.4, "31", "31555"),
          ("Lille", 50.629, 3.057, 1.5, "59", "59350"), ("Bordeaux", 44.838, -0.579, 1.4, "33", "33063"),
          ("Nice", 43.710, 7.262, 1.0, "06", "06088"), ("Nantes", 47.218, -1.554, 1.0, "44", "44109"),
          ("Strasbourg", 48.573, 7.752, 0.8, "67", "67482"), ("Montpellier", 43.611, 3.877, 0.8, "34", "34172"),
          ("Rennes", 48.117, -1.678, 0.7, "35", "35238"), ("Grenoble", 45.188, 5.724, 0.7, "38", "38185"),
          ("Rouen", 49.443, 1.099, 0.7, "76", "76540"), ("Toulon", 43.124, 5.928, 0.6, "83", "83137"),
          ("Nancy", 48.692, 6.184, 0.4, "54", "54395"), ("Tours", 47.394, 0.685, 0.5, "37", "37261"),
          ("Clermont", 45.778, 3.087, 0.5, "63", "63113"), ("Dijon", 47.322, 5.041, 0.4, "21", "21231"),
          ("Brest", 48.390, -4.486, 0.3, "29", "29019"), ("Limoges", 45.834, 1.261, 0.3, "87", "87085")]
SPREAD_DEG = 0.3  # a metro area and its suburbs: ~33 km of latitude (one sigma)
BACKGROUND = 0.25  # the share spread evenly over mainland France instead
FRANCE = (42.5, -4.5, 50.9, 7.8)
COMMUNE_DEG = 0.05  # synthetic commune codes: one per 0.05° cell (~35k over France, as the real ones)
DEPARTEMENT_DEG = (0.9, 1.2)  # synthetic département codes: ~90 cells over France, as the 96 real ones
KINDS = ("new_inspection", "downgrade", "upgrade")
NOW = datetime(2025, 6, 30, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Places:
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    city: npt.NDArray[np.int64]


def places(rng: np.random.Generator, n: int, layout: str) -> Places:
    weights = np.array([c[3] for c in CITIES])
    city = rng.choice(len(CITIES), n, p=weights / weights.sum())
    lat = np.array([c[1] for c in CITIES])[city] + rng.normal(0, SPREAD_DEG, n)
    lon = np.array([c[2] for c in CITIES])[city] + rng.normal(0, SPREAD_DEG * 1.4, n)
    even = rng.random(n) < (1.0 if layout == "even" else BACKGROUND)
    south, west, north, east = FRANCE
    lat[even], lon[even] = rng.uniform(south, north, even.sum()), rng.uniform(west, east, even.sum())
    return Places(lat, lon, city)


def commune(lat: float, lon: float) -> str:
    return f"c{math.floor(lat / COMMUNE_DEG)}_{math.floor(lon / COMMUNE_DEG)}"


def departement(lat: float, lon: float) -> str:
    return f"d{math.floor(lat / DEPARTEMENT_DEG[0])}_{math.floor(lon / DEPARTEMENT_DEG[1])}"


def area_of(kind: float, lat: float, lon: float, radius: float) -> Area:
    if kind < 0.85:
        return Circle(Point(lat, lon), radius)
    if kind < 0.90:
        d = radius / 111_000 * 0.8
        ring = tuple((lon + d * 1.4 * math.cos(a), lat + d * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7))
        return Polygon(((ring[:-1] + ring[:1],),))
    if kind < 0.95:
        return AdminArea("departement", departement(lat, lon)) if kind < 0.905 else AdminArea("commune",
                                                                                             commune(lat, lon))
    d = radius / 111_000
    return BBox(lat - d, lon - d * 1.4, lat + d, lon + d * 1.4)


def filter_of(draw: float) -> Filter:
    if draw < 0.15:
        return Filter(kinds=frozenset({KINDS[int(draw * 100) % 3]}))
    if draw < 0.30:
        return Filter(min_rating=3)
    if draw < 0.35:
        return Filter(where=Eq("activity", "Restaurant") if draw < 0.33 else Range("rating", gte=2))
    return Filter()


def subscriptions(rng: np.random.Generator, n: int, layout: str = "cities") -> list[Subscription]:
    at = places(rng, n, layout)
    radius = np.exp(rng.uniform(math.log(200), math.log(5000), n))
    kind, flt = rng.random(n), rng.random(n)
    return [Subscription(f"s{i}", area_of(kind[i], at.lat[i], at.lon[i], radius[i]),
                         "console://", filter_of(flt[i])) for i in range(n)]


def changes(rng: np.random.Generator, n: int, layout: str = "cities") -> list[Change]:
    at, ratings = places(rng, n, layout), rng.integers(1, 5, n)
    out = []
    for i in range(n):
        lat, lon = float(at.lat[i]), float(at.lon[i])
        fields = {"name": f"r{i}", "activity": "Restaurant" if i % 2 else "Boulangerie",
                  "date_inspection": "2025-06-01"}
        record = Record("alimconfiance", f"k{i}", fields, f"f{i}", Point(lat, lon),
                        AdminCodes(commune=commune(lat, lon), departement=departement(lat, lon)),
                        rating=int(ratings[i]))
        change = diff_one(None, record, at=NOW, version="v1", profile=ALIMCONFIANCE)
        if change is not None:
            out.append(change)
    return out




@dataclass(frozen=True, slots=True)
class Circles:
    """The circle subscriptions as arrays, for the baselines."""

    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    radius: npt.NDArray[np.float64]

    @classmethod
    def of(cls, subs: list[Subscription]) -> Circles:
        circles = [s.area for s in subs if isinstance(s.area, Circle)]
        return cls(np.array([c.center.lat for c in circles]), np.array([c.center.lon for c in circles]),
                   np.array([c.radius_m for c in circles]))


def haversine(lat1: npt.NDArray[np.float64], lon1: npt.NDArray[np.float64], lat2: float | npt.NDArray[np.float64],
              lon2: float | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    result: npt.NDArray[np.float64] = 2 * 6_371_008.8 * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return result


def cpu(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def points_of(batch: list[Change]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    points = [c.current.point for c in batch]
    return np.array([p.lat for p in points if p]), np.array([p.lon for p in points if p])


def brute_rate(circles: Circles, batch: list[Change]) -> float:
    lat, lon = points_of(batch[:50])
    seconds = cpu(lambda: [np.flatnonzero(haversine(circles.lat, circles.lon, a, b) <= circles.radius)
                           for a, b in zip(lat, lon, strict=True)])
    return len(lat) / seconds


def strtree_rate(circles: Circles, batch: list[Change]) -> float:
    import shapely  # noqa: PLC0415 - a dev dependency, only the bench needs it

    dlat = np.degrees(circles.radius / 6_371_008.8)
    dlon = dlat / np.cos(np.radians(circles.lat))
    tree = shapely.STRtree(shapely.box(circles.lon - dlon, circles.lat - dlat, circles.lon + dlon, circles.lat + dlat))
    lat, lon = points_of(batch)
    points = shapely.points(lon, lat)

    def run() -> int:
        which, found = tree.query(points)
        near = haversine(circles.lat[found], circles.lon[found], lat[which], lon[which]) <= circles.radius[found]
        return int(near.sum())

    return len(lat) / cpu(run)


def redis_rate(circles: Circles, batch: list[Change], url: str | None, count: int) -> float | None:
    """One GEOSEARCH per change, wall time (the work happens in redis-server); None without $REDIS_URL."""
    if not url:
        return None
    import redis  # noqa: PLC0415 - the redis extra, only for this baseline

    client = redis.Redis.from_url(url)
    key = f"bench-match-{uuid.uuid4().hex[:8]}:circles"
    try:
        for start in range(0, len(circles.lat), 20_000):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(start + 20_000, len(circles.lat))):
                pipe.geoadd(key, (float(circles.lon[i]), float(circles.lat[i]), i))
            pipe.execute()
        lat, lon = points_of(batch[:count])
        began = time.perf_counter()
        for a, b in zip(lat.tolist(), lon.tolist(), strict=True):
            found = client.geosearch(key, longitude=b, latitude=a, radius=5000, unit="m", withdist=True)
            _ = [pair for pair in found if float(pair[1]) <= circles.radius[int(pair[0])]]  # type: ignore[arg-type]
        return len(lat) / (time.perf_counter() - began)
    finally:
        client.delete(key)
        client.close()


@dataclass(frozen=True, slots=True)
class Row:
    layout: str
    size: int
    build_s: float
    bytes_per_sub: float
    batch_rate: float
    matches: float
    p50_us: float
    p99_us: float
    one_cpu_us: float
    brute: float
    strtree: float
    redis: float | None


def measure(layout: str, size: int, n_changes: int, one: int, seed: int) -> Row:
    rng = np.random.default_rng(seed)
    subs, batch = subscriptions(rng, size, layout), changes(rng, n_changes, layout)
    tracemalloc.start()
    kept = SubscriptionIndex(subs)
    bytes_per_sub = tracemalloc.get_traced_memory()[0] / size
    tracemalloc.stop()
    del kept
    built: list[SubscriptionIndex] = []
    build_s = cpu(lambda: built.append(SubscriptionIndex(subs)))
    index = built[0]
    index.match_pairs(batch[:1])  # a process's first match loads (or compiles) core/index_kernel.py: not timed
    pairs: list[int] = []
    batch_s = cpu(lambda: pairs.append(len(index.match_pairs(batch)[0])))
    times = []
    began = time.process_time()
    for change in batch[:one]:
        t0 = time.perf_counter_ns()
        index.match(change)
        times.append((time.perf_counter_ns() - t0) / 1000)
    one_cpu = (time.process_time() - began) / len(times) * 1e6
    circles = Circles.of(subs)
    redis = redis_rate(circles, batch, os.environ.get("REDIS_URL"), min(one, 2000))
    return Row(layout, size, build_s, bytes_per_sub, n_changes / batch_s, pairs[0] / n_changes,
               statistics.median(times), float(np.percentile(times, 99)), one_cpu,
               brute_rate(circles, batch), strtree_rate(circles, batch), redis)


def table(rows: list[Row]) -> str:
    head = (f"{'layout':>7} {'subs':>9} {'build s':>8} {'B/sub':>6} {'batch/s':>9} {'µs cpu':>7} {'match':>6} "
            f"{'p50 µs':>7} {'p99 µs':>7} {'1by1 cpu':>8} {'brute/s':>8} {'STRtree/s':>10} {'Redis/s':>8} "
            f"{'x brute':>8} {'x STRtree':>9} {'x Redis':>8}")
    lines = [head]
    for r in rows:
        redis = f"{r.redis:8.0f}" if r.redis else f"{'n/a':>8}"
        x_redis = f"{r.batch_rate / r.redis:8.1f}" if r.redis else f"{'n/a':>8}"
        lines.append(f"{r.layout:>7} {r.size:>9} {r.build_s:8.2f} {r.bytes_per_sub:6.0f} {r.batch_rate:9.0f} "
                     f"{1e6 / r.batch_rate:7.1f} {r.matches:6.1f} {r.p50_us:7.1f} {r.p99_us:7.1f} {r.one_cpu_us:8.1f} "
                     f"{r.brute:8.1f} {r.strtree:10.0f} {redis} {r.batch_rate / r.brute:8.0f} "
                     f"{r.batch_rate / r.strtree:9.2f} {x_redis}")
    t = TARGETS
    lines.append(f"{'':>7} {'target 1M':>9} {'≤' + str(t['build s']):>8} {'≤' + str(t['B/sub']):>6} "
                 f"{'≥' + str(t['batch/s']):>9} {'':>7} {'':>6} {'':>7} {'≤' + str(t['p99 µs']):>7} {'':>8} "
                 f"{'':>8} {'':>10} {'':>8} {'':>8} {'≥' + str(t['x STRtree']):>9} {'≥' + str(t['x Redis']):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k subscriptions, 2k changes: a few seconds")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--changes", type=int, default=20_000)
    parser.add_argument("--one", type=int, default=5_000, help="changes matched one at a time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--layouts", default="cities,even",
                        help="cities: clustered around French cities; even: spread evenly over France (the setup "
                             "issue 9's reference figures were measured on)")
    args = parser.parse_args(argv)
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n_changes, one = (2_000, 1_000) if args.quick else (args.changes, args.one)
    rows = []
    for layout in args.layouts.split(","):
        for size in sizes:
            rows.append(measure(layout, size, n_changes, one, args.seed))
            print(f"measured {size} subscriptions ({layout})", file=sys.stderr, flush=True)
    print(f"{n_changes} changes (batch), {one} one at a time; CPU time of one process; Redis: wall time per "
          "GEOSEARCH round trip; baselines answer circles only")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
