"""Dataset notices on `changes` (a source incident published by the producer role) leave the current-state view
as it is: they are about the dataset, not a record to show."""

from __future__ import annotations

import pytest

from streams.view import steps
from tests.unit.notices import NOTICES


@pytest.mark.parametrize("kind", sorted(NOTICES))
def test_a_notice_changes_nothing_in_the_view(kind: str) -> None:
    assert steps(NOTICES[kind]) == []
