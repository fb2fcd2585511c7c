"""Feed cursors: opaque, round-trip every log position, refuse anything else with a 400 on the field."""

from __future__ import annotations

import pytest

from subscriptions.auth import Problem
from subscriptions.feed import decode, encode


@pytest.mark.parametrize("position", ["1", "123456789", "1733220000000-0", "1733220000000-17"])
def test_positions_round_trip(position: str) -> None:
    cursor = encode(position)
    assert cursor.startswith("v1.")
    assert decode(cursor) == position


@pytest.mark.parametrize("cursor", ["", "nope", "v1.", "v1.!!!", "v2.MTIz", encode("1; DROP"), "v1.w4k"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(Problem) as refused:
        decode(cursor)
    assert refused.value.status == 400
