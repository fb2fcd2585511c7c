"""Digest and quiet hours as the API and the CLI take them (subscriptions/schemas.py)."""

from __future__ import annotations

import pydantic
import pytest

from subscriptions.schemas import SubscriptionIn


def test_digest_and_quiet_hours_reach_the_subscription() -> None:
    spec = SubscriptionIn(to="console://", everywhere=True, digest="6h", quiet="22h00 - 7h00", timezone="Europe/Berlin")
    sub = spec.to_subscription("s1")
    assert (sub.digest_hours, sub.quiet_hours, sub.timezone) == (6, "22:00-07:00", "Europe/Berlin")


def test_none_by_default() -> None:
    sub = SubscriptionIn(to="console://", everywhere=True).to_subscription("s1")
    assert (sub.digest_hours, sub.quiet_hours, sub.timezone) == (0, "", "Europe/Paris")


@pytest.mark.parametrize(("field", "value"), [("digest", "48h"), ("quiet", "late"), ("timezone", "Mars/Olympus")])
def test_bad_values_are_explained(field: str, value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        SubscriptionIn(to="console://", everywhere=True, **{field: value})
