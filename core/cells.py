"""Areas on nested uniform lat/lon grids, as sorted numpy arrays of cell keys (the geometric half of core/index.py).

Level k has cells of `STEPS[k]` degrees (0.02°, 0.16°, 1.28°, 10.24°: about 2.2 km, 18 km, 140 km and 1,100 km of
latitude). An area's bounding box goes to the finest level where it covers at most `MAX_CELLS` cells, one entry per
cell; an area too big for every level is `huge` (checked for every change, as 'everywhere' is). A point looks up
one cell per level. Cell numbers are `floor((lat + 90) / step)`, the same IEEE operations in Python and numpy, and
monotonic, so a point inside a box always falls in one of the box's cells.

`CellTable` is (key, row) pairs sorted by key: `expand(keys)` gives every (query, row) pair whose cells agree, by
two `searchsorted` calls and one `repeat`, for one point or a hundred thousand at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Rows = npt.NDArray[np.int32]

STEPS: tuple[float, ...] = (0.02, 0.16, 1.28, 10.24)
MAX_CELLS = 64
LEVEL_SHIFT, ROW_SHIFT = 40, 20
EMPTY_KEYS: Ints = np.empty(0, np.int64)
EMPTY_ROWS: Rows = np.empty(0, np.int32)


def point_keys(lat: float, lon: float) -> list[int]:
    """The cell key of a point at every level (scalar version of `points_keys`)."""
    return [(level << LEVEL_SHIFT) | (math.floor((lat + 90.0) / step) << ROW_SHIFT)
            | math.floor((lon + 180.0) / step) for level, step in enumerate(STEPS)]


def admin_key(level: int, code: int) -> int:
    """The cell key of admin code number `code` at admin level `level` (core.geo.ADMIN_LEVELS' index): levels past
    the grid's, so an admin area is one more entry of the same tables and a place looks its codes up as cells."""
    return ((len(STEPS) + level) << LEVEL_SHIFT) | code


def points_keys(lat: Floats, lon: Floats) -> Ints:
    """Shape (levels, n): the cell key of each point at each level; NaN points get key -1 (no cell)."""
    out = np.empty((len(STEPS), len(lat)), np.int64)
    missing = np.isnan(lat) | np.isnan(lon)
    safe_lat, safe_lon = np.where(missing, 0.0, lat), np.where(missing, 0.0, lon)
    for level, step in enumerate(STEPS):
        i = np.floor((safe_lat + 90.0) / step).astype(np.int64)
        j = np.floor((safe_lon + 180.0) / step).astype(np.int64)
        out[level] = (level << LEVEL_SHIFT) | (i << ROW_SHIFT) | j
    out[:, missing] = -1
    return out


@dataclass(frozen=True, slots=True)
class Cover:
    keys: Ints  # one entry per covered cell
    owners: Ints  # index (into the boxes given) of the area each entry belongs to
    huge: npt.NDArray[np.bool_]  # per box: too big for every level


def cover(south: Floats, west: Floats, north: Floats, east: Floats) -> Cover:
    """The cells each box covers at its level (vectorised over boxes)."""
    n = len(south)
    level = np.full(n, -1, np.int64)
    i0, j0, ni, nj = (np.zeros(n, np.int64) for _ in range(4))
    for k in reversed(range(len(STEPS))):  # the finest level that fits wins: it is written last
        step = STEPS[k]
        a = np.floor((south + 90.0) / step).astype(np.int64)
        b = np.floor((west + 180.0) / step).astype(np.int64)
        rows = np.floor((north + 90.0) / step).astype(np.int64) - a + 1
        cols = np.floor((east + 180.0) / step).astype(np.int64) - b + 1
        fits = rows * cols <= MAX_CELLS
        level[fits], i0[fits], j0[fits], ni[fits], nj[fits] = k, a[fits], b[fits], rows[fits], cols[fits]
    huge = level < 0
    counts = np.where(huge, 0, ni * nj)
    owners = np.repeat(np.arange(n, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(owners.size, dtype=np.int64) - starts[owners]
    width = nj[owners]
    rows, cols = i0[owners] + local // width, j0[owners] + local % width
    keys = (level[owners] << LEVEL_SHIFT) | (rows << ROW_SHIFT) | cols
    return Cover(keys, owners, huge)


def circle_boxes(lat: Floats, lon: Floats, radius_m: Floats, earth_radius_m: float,
                 pad_deg: float) -> tuple[Floats, Floats, Floats, Floats]:
    """core.geo.Circle.bbox over arrays (south, west, north, east), padded by `pad_deg` more against rounding."""
    d = radius_m / earth_radius_m
    south = lat - np.degrees(d) - pad_deg
    north = lat + np.degrees(d) + pad_deg
    with np.errstate(divide="ignore", invalid="ignore"):
        dlon = np.degrees(np.arcsin(np.minimum(1.0, np.sin(d) / np.cos(np.radians(lat))))) + pad_deg
    west, east = lon - dlon, lon + dlon
    wide = (south <= -90.0) | (north >= 90.0) | (west < -180.0) | (east > 180.0) | np.isnan(dlon)
    return (np.maximum(-90.0, south), np.where(wide, -180.0, west), np.minimum(90.0, north),
            np.where(wide, 180.0, east))


@dataclass(frozen=True, slots=True)
class CellTable:
    """(cell key, row) pairs sorted by key."""

    keys: Ints
    rows: Rows

    @classmethod
    def of(cls, keys: Ints, rows: Rows) -> CellTable:
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], rows[order])

    def __len__(self) -> int:
        return len(self.keys)

    def merged(self, other: CellTable, keep: npt.NDArray[np.bool_]) -> CellTable:
        """Both tables in one, without the entries of rows where `keep` is False."""
        keys, rows = np.concatenate((self.keys, other.keys)), np.concatenate((self.rows, other.rows))
        alive = keep[rows]
        return CellTable.of(keys[alive], rows[alive])

    def expand(self, keys: Ints) -> tuple[Ints, Rows]:
        """(query index, row) for every entry whose key equals the query's."""
        if not len(self.keys) or not len(keys):
            return EMPTY_KEYS, EMPTY_ROWS
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        counts = hi - lo
        query = np.repeat(np.arange(len(keys), dtype=np.int64), counts)
        starts = np.cumsum(counts) - counts
        positions = np.arange(query.size, dtype=np.int64) - starts[query] + lo[query]
        return query, self.rows[positions]

    def rows_at(self, keys: list[int]) -> list[Rows]:
        """The rows of each key, as views (one point's lookup)."""
        found = np.searchsorted(self.keys, keys, side="left")
        ends = np.searchsorted(self.keys, keys, side="right")
        return [self.rows[a:b] for a, b in zip(found.tolist(), ends.tolist(), strict=True) if b > a]


EMPTY_TABLE = CellTable(EMPTY_KEYS, EMPTY_ROWS)
