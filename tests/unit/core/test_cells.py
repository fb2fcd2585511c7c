"""core/cells.py's cover, and its compiled twin in core/index_kernel.py: the same cells for every box."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from core import cells, index_kernel
from tests.unit.core import strategies as s

index_kernel.kernel()  # core/index_kernel.py compiled (the `fast` extra, installed with the dev tools)
index_kernel.cover(*(np.zeros(1) for _ in range(4)))  # its first call compiles (or loads) it: not a test case's time


@given(boxes=st.lists(s.bboxes(), min_size=1, max_size=30))
def test_the_compiled_cover_gives_the_cells_numpy_gives(boxes: list[object]) -> None:
    south, west, north, east = (np.array([getattr(b, side) for b in boxes], np.float64)
                                for side in ("south", "west", "north", "east"))
    expected, compiled = cells.cover(south, west, north, east), index_kernel.cover(south, west, north, east)
    assert np.array_equal(compiled.keys, expected.keys)
    assert np.array_equal(compiled.owners, expected.owners)
    assert np.array_equal(compiled.huge, expected.huge)


def test_a_box_too_big_for_every_level_is_huge_and_has_no_cells() -> None:
    world, paris = (-90.0, -180.0, 90.0, 180.0), (48.85, 2.35, 48.86, 2.36)
    covered = index_kernel.cover(*(np.array(side) for side in zip(world, paris, strict=True)))
    assert covered.huge.tolist() == [True, False]
    assert set(covered.owners.tolist()) == {1}
