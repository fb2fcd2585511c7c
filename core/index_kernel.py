"""The subscription index's inner loop, compiled: cells to candidates, then the thematic masks and the geometry,
in one pass over each located side, without the temporaries the numpy version allocates per candidate.

It needs numba (the `fast` extra). `kernel()` compiles it, or says None; core/index.py uses the numpy version
otherwise. Both answer the same question with the same floating-point rules: a point within `RIM_M` of a circle's
rim comes back *unsure*, for core.geo to decide in Python, so the verdict never depends on which libm computed the
distance; polygons are decided here by the very operations core.geo._in_ring performs, in the same order
(tests/unit/core/test_match.py runs both against brute force).

Compiled code is cached on disk beside this file (or under $NUMBA_CACHE_DIR): the first process compiles for a
few seconds, the next ones load it in about half a second.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from core.cells import LEVEL_SHIFT, MAX_CELLS, ROW_SHIFT, STEPS, Cover, Floats
from core.geo import EARTH_RADIUS_M

CIRCLE, BOX, POLYGON, ADMIN, EVERYWHERE = 1, 2, 3, 4, 5
NO_RATING = -(2**31)
DEAD, PLAIN, FILTERED = 0.0, 1.0, 2.0  # a row's state (core/index.py writes it)
UNSURE, SLOW = 1, 2  # bits of a match's `check`: Python decides its geometry (a rim point), its filter (fields)
RIM_M = 1e-6  # a point this close to a circle's rim is decided by core.geo in Python
_REJECT_M = 1e-3  # a point whose latitude alone puts it this far outside a circle is outside (no trigonometry)
_RAD = math.pi / 180.0

Ints = npt.NDArray[np.int64]
Rows = npt.NDArray[np.int32]


def _candidates(side_keys: Ints, table_keys: Ints, bounds: Ints, slot: int) -> int:
    """Store each (level, side) key's [lo, hi) range of `table_keys` in bounds[slot], bounds[slot + 1]; their
    total. Keys are looked up in sorted order, each search galloping from where the previous one ended: a batch
    walks the table once, in order, instead of one cache-missing binary search per key."""
    total, size = 0, len(table_keys)
    n = side_keys.shape[1]
    flat = side_keys.ravel()
    at = 0
    for q in np.argsort(flat):
        key = flat[q]
        lo = hi = 0
        if key >= 0 and size:
            step = 1  # gallop: the first position whose key is >= `key`, searching forward from `at`
            while at + step < size and table_keys[at + step] < key:
                step *= 2
            lo = at + np.searchsorted(table_keys[at:min(at + step + 1, size)], key, side="left")
            hi = lo
            while hi < size and table_keys[hi] == key:
                hi += 1
            at = lo
        bounds[q // n, q % n, slot] = lo
        bounds[q // n, q % n, slot + 1] = hi
        total += hi - lo
    return total


def _accepts(wanted_ds: int, wanted_kinds: int, low: int, high: int,  # noqa: PLR0917
             offered_ds: int, offered_kinds: int, rating: int) -> bool:
    """A row's dataset and kind masks and rating bounds accept a change (0 in a mask: any). Branch-free: which
    rows carry a filter is random, and mispredicted branches cost more than evaluating every term."""
    rated = rating != NO_RATING
    return bool(((wanted_ds == 0) | ((wanted_ds & offered_ds) != 0))
                & ((wanted_kinds == 0) | ((wanted_kinds & offered_kinds) != 0))
                & ((low == NO_RATING) | (rated & (rating >= low)))
                & ((high == NO_RATING) | (rated & (rating <= high))))


def _in_ring(lon: float, lat: float, vertices: Any, start: int, end: int) -> bool:
    """core.geo._in_ring, the same operations in the same order (so the same IEEE results)."""
    inside = False
    j = end - 1
    for i in range(start, end):
        xi, yi, xj, yj = vertices[i, 0], vertices[i, 1], vertices[j, 0], vertices[j, 1]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _in_polygon(first: int, count: int, lat: float, lon: float,  # noqa: PLR0917
                rings: Ints, vertices: Any) -> int:
    """core.geo.Polygon.contains past its box: in one polygon's outer ring and in none of its holes."""
    k, end = first, first + count
    while k < end:
        inside = _in_ring(lon, lat, vertices, rings[k, 0], rings[k, 1])
        k += 1
        while k < end and rings[k, 2] == 0:  # this polygon's holes
            if inside and _in_ring(lon, lat, vertices, rings[k, 0], rings[k, 1]):
                inside = False
            k += 1
        if inside:
            return 1
    return 0


def _in_circle(clat: float, clon: float, radius: float, cos_clat: float, low: float, high: float,  # noqa: PLR0911, PLR0917
               lat: float, lon: float, coslat: float) -> int:
    """0 out, 1 in, 2 unsure for a circle (centre, radius, cos of the centre's latitude, rim band) and a point.

    The meridian distance first; then bounds on the haversine term h without trigonometry (with x = Δφ or Δλ,
    x²/4 (1 - x²/12) <= sin²(x/2) <= x²/4, so h lies between flat (1 - m/12) and flat) against the circle's band,
    which decide most points; near the rim, h itself against the band (no asin), then the exact distance,
    core.geo's operations."""
    if abs(lat - clat) * _RAD * EARTH_RADIUS_M > radius + _REJECT_M:
        return 0  # the meridian distance alone is already longer than the radius
    dphi, dlam = (lat - clat) * _RAD, (lon - clon) * _RAD
    flat = (dphi * dphi + cos_clat * coslat * dlam * dlam) / 4
    if flat < low:
        return 1
    if flat * (1 - max(dphi * dphi, dlam * dlam) / 12) > high:
        return 0
    phi1, phi2 = clat * _RAD, lat * _RAD
    half_dlat, half_dlon = math.sin((phi2 - phi1) / 2), math.sin((lon - clon) * _RAD / 2)
    h = half_dlat * half_dlat + cos_clat * coslat * half_dlon * half_dlon
    if h < low:
        return 1
    if h > high:
        return 0
    h = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin((lon - clon) * _RAD / 2) ** 2
    distance = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    if abs(distance - radius) <= RIM_M:
        return 2
    return 1 if distance <= radius else 0


def _prepare(side_keys: Ints, main_keys: Ints, delta_keys: Ints, always: int) -> tuple[Any, Ints, Rows, Any]:
    """Each side's [lo, hi) ranges in both cell tables (bounds[level, side] = main lo, hi, delta lo, hi), and the
    output arrays, sized for every candidate."""
    levels, n = side_keys.shape
    bounds = np.empty((levels, n, 4), np.int64)
    total = _candidates(side_keys, main_keys, bounds, 0) + _candidates(side_keys, delta_keys, bounds, 2) + always * n
    return bounds, np.empty(total, np.int64), np.empty(total, np.int32), np.empty(total, np.uint8)


def _match(side_keys: Ints, side_lat: Any, side_lon: Any, side_change: Ints,  # noqa: PLR0917 - positional for numba
           ch_masks: Any, ch_rating: Ints,
           main_keys: Ints, main_rows: Rows, delta_keys: Ints, delta_rows: Rows, always: Rows,
           shape: Any, masks: Any, ratings: Any, slow: Any, rings: Ints, vertices: Any) -> tuple[Ints, Rows, Any]:
    """(side, row, check) of every candidate that passes: rows from both cell tables and `always`, in no
    particular order (sides are visited place by place); `check` has the UNSURE bit for a point within RIM_M of a
    circle's rim and the SLOW bit for a row whose filter reads fields (`slow`, a row's flag): what Python decides.

    Each candidate is decided here, in the loop's body, by helpers that take numbers: a compiled helper handed an
    array counts a reference to it on every call, which cost more than the tests themselves. A row's `shape` is
    one 64-byte record whose last field says whether it is live and has masks or ratings to check: most rows cost
    one cache line."""
    levels = side_keys.shape[0]
    bounds, out_side, out_row, out_check = _prepare(side_keys, main_keys, delta_keys, len(always))
    found = 0
    for s in np.argsort(side_keys[1], kind="mergesort"):  # by 0.16° cell: neighbours share warm cache lines
        lat, lon, change = side_lat[s], side_lon[s], side_change[s]
        coslat = math.cos(lat * _RAD)
        offered_ds, offered_kinds, rating = ch_masks[0, change], ch_masks[1, change], ch_rating[change]
        for segment in range(2 * levels + 1):  # each level's main then delta rows, then `always`
            if segment == 2 * levels:  # a side without a point still lies 'everywhere'
                rows, start, end = always, 0, len(always)
            else:
                level, table = segment >> 1, segment & 1
                rows = main_rows if table == 0 else delta_rows
                start, end = bounds[level, s, 2 * table], bounds[level, s, 2 * table + 1]
            for p in range(start, end):
                r = rows[p]
                state = shape[r, 7]
                if state == DEAD or (state == FILTERED and not _accepts(
                        masks[r, 0], masks[r, 1], ratings[r, 0], ratings[r, 1], offered_ds, offered_kinds, rating)):
                    continue
                kind = shape[r, 0]
                if kind == CIRCLE:
                    v = _in_circle(shape[r, 1], shape[r, 2], shape[r, 3], shape[r, 4], shape[r, 5], shape[r, 6],
                                   lat, lon, coslat)
                elif kind in (EVERYWHERE, ADMIN):
                    v = 1  # an admin row is a candidate only in its code's cell
                elif shape[r, 1] <= lat <= shape[r, 3] and shape[r, 2] <= lon <= shape[r, 4]:
                    v = 1 if kind == BOX else _in_polygon(int(shape[r, 5]), int(shape[r, 6]), lat, lon, rings,
                                                          vertices)
                else:
                    v = 0
                if v:
                    out_side[found], out_row[found] = s, r
                    out_check[found] = (UNSURE if v == 2 else 0) | (SLOW if slow[r] else 0)
                    found += 1
    return out_side[:found], out_row[:found], out_check[:found]


def _cover(south: Any, west: Any, north: Any, east: Any, steps: Any,  # noqa: PLR0917 - positional for numba
           max_cells: int, level_shift: int, row_shift: int) -> tuple[Ints, Ints, Any]:
    """core.cells.cover in one pass per box instead of one numpy pass per level: (keys, owners, huge), the same
    IEEE operations (a sum, a division, a floor), so the same cells."""
    n = len(south)
    level = np.full(n, -1, np.int64)
    first_row, first_col = np.zeros(n, np.int64), np.zeros(n, np.int64)
    rows, cols = np.zeros(n, np.int64), np.zeros(n, np.int64)
    total = 0
    for b in range(n):
        for k in range(len(steps)):  # the finest level that fits wins
            step = steps[k]
            i0, j0 = math.floor((south[b] + 90.0) / step), math.floor((west[b] + 180.0) / step)
            ni = math.floor((north[b] + 90.0) / step) - i0 + 1
            nj = math.floor((east[b] + 180.0) / step) - j0 + 1
            if ni * nj <= max_cells:
                level[b], first_row[b], first_col[b], rows[b], cols[b] = k, i0, j0, ni, nj
                total += ni * nj
                break
    keys = np.empty(total, np.int64)
    owners = np.empty(total, np.int64)
    at = 0
    for b in range(n):
        if level[b] < 0:
            continue
        for i in range(first_row[b], first_row[b] + rows[b]):
            for j in range(first_col[b], first_col[b] + cols[b]):
                keys[at] = (level[b] << level_shift) | (i << row_shift) | j
                owners[at] = b
                at += 1
    return keys, owners, level < 0


def cover(south: Floats, west: Floats, north: Floats, east: Floats) -> Cover:
    """core.cells.cover, compiled once kernel() has run (before, the same code in Python: right, and slow)."""
    keys, owners, huge = _cover(south, west, north, east, np.array(STEPS), MAX_CELLS, LEVEL_SHIFT, ROW_SHIFT)
    return Cover(keys, owners, huge)


def rim_bands(radius: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(low, high) per circle radius: a point whose haversine h (sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2)) is below
    `low` is inside the circle, above `high` outside, by more than RIM_M and far more than any rounding; in between,
    the exact distance decides. h grows with the distance up to half the Earth's circumference."""
    half_turn = math.pi * EARTH_RADIUS_M
    inner, outer = radius * (1 - 1e-9) - 2 * RIM_M, radius * (1 + 1e-9) + 2 * RIM_M
    low = np.where(inner > 0, np.sin(np.maximum(inner, 0.0) / (2 * EARTH_RADIUS_M)) ** 2, -1.0)
    high = np.where(outer < half_turn, np.sin(np.minimum(outer, half_turn) / (2 * EARTH_RADIUS_M)) ** 2, 2.0)
    return low, high


# Helpers compiled into `_match` (a call passing arrays costs more than the test itself), and the two entry points.
_INLINE = ("_accepts", "_in_circle", "_in_ring", "_in_polygon")
_ENTRY = ("_candidates", "_prepare", "_cover")
Kernel = Callable[..., tuple[Ints, Rows, Any]]


@functools.cache
def kernel() -> Kernel | None:
    """`_match` compiled, or None without numba. numba is imported here, on the first index built, not by every
    command that imports core.index; the module's helpers are replaced by their compiled forms, which is how
    `_match` finds them."""
    if importlib.util.find_spec("numba") is None:
        return None
    import numba  # noqa: PLC0415 - ~0.2 s to import: paid by the first index, not by `vigie --help`

    module = globals()
    for name in _INLINE:
        module[name] = numba.njit(inline="always")(module[name])
    for name in _ENTRY:
        module[name] = numba.njit(cache=True, nogil=True)(module[name])
    compiled: Kernel = numba.njit(cache=True, nogil=True)(_match)
    return compiled
