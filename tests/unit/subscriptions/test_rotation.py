"""Secret rotation as data: which secrets sign when, and what the stores keep (never the bus)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.codec import subscription_from_dict, subscription_to_dict
from core.geo import Everywhere
from core.model import Subscription
from subscriptions.lifecycle import rotated

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
SUB = Subscription("s1", Everywhere(), "webhook+https://partner.example/h", secret="whsec_old")


def test_both_sign_during_the_overlap_then_only_the_new() -> None:
    new = rotated(SUB, "whsec_new", now=NOW, overlap=DAY)
    assert new.signing_secrets(NOW) == ("whsec_new", "whsec_old")
    assert new.signing_secrets(NOW + DAY - timedelta(seconds=1)) == ("whsec_new", "whsec_old")
    assert new.signing_secrets(NOW + DAY) == ("whsec_new",)


def test_a_second_rotation_keeps_two_secrets_at_most() -> None:
    twice = rotated(rotated(SUB, "whsec_b", now=NOW, overlap=DAY), "whsec_c", now=NOW, overlap=DAY)
    assert twice.signing_secrets(NOW) == ("whsec_c", "whsec_b")


def test_no_overlap_and_no_secret() -> None:
    assert rotated(SUB, "whsec_new", now=NOW, overlap=timedelta(0)).signing_secrets(NOW) == ("whsec_new",)
    with pytest.raises(ValueError, match="webhook"):
        rotated(Subscription("s2", Everywhere(), "console://"), "whsec_x", now=NOW, overlap=DAY)


def test_stores_keep_the_previous_secret_the_bus_never_sees_it() -> None:
    new = rotated(SUB, "whsec_new", now=NOW, overlap=DAY)
    assert subscription_from_dict(subscription_to_dict(new)) == new
    on_the_bus = subscription_to_dict(new, include_secret=False)
    assert "whsec_old" not in str(on_the_bus)
    assert subscription_from_dict(on_the_bus).signing_secrets(NOW) == ()
