"""Which subscriptions does a change concern?

`Matcher` is the port; `concerns` the exact test of one subscription and `brute_force` the reference that
core/index.py (the index every runtime uses) must equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from core.model import Change, Kind, Op, Record, Subscription

SOURCE_KINDS = frozenset({Kind.SOURCE_STALE, Kind.SOURCE_FAILING, Kind.SOURCE_RECOVERED})


class Matcher(Protocol):
    def add(self, subscription: Subscription) -> None: ...

    def remove(self, subscription_id: str) -> None: ...

    def match(self, change: Change) -> list[Subscription]: ...

    def match_many(self, changes: Sequence[Change]) -> list[list[Subscription]]: ...

    def __len__(self) -> int: ...


def sides(change: Change) -> list[Record]:
    """A moved record matches where it was and where it is; a removed one where it was."""
    sides = [r for r in (change.after, change.before) if r is not None]
    if len(sides) == 2 and sides[0].point == sides[1].point and sides[0].admin == sides[1].admin:
        return sides[:1]
    return sides


def dataset_wide(change: Change) -> bool:
    """A source notice (core/health.py) concerns every subscription of its dataset, wherever its area."""
    return change.op is Op.NOTICE and change.kind in SOURCE_KINDS


def concerns(subscription: Subscription, change: Change) -> bool:
    """The exact test: the subscription is active, its area contains one side and its filter accepts it; a source
    notice needs only an active subscription whose filter admits the dataset."""
    if dataset_wide(change):
        datasets = subscription.filter.datasets
        return subscription.active and (not datasets or change.dataset in datasets)
    if not subscription.active or not subscription.filter.accepts(change, change.current.rating):
        return False
    return any(subscription.area.contains(r.point, r.admin) for r in sides(change))


def brute_force(subscriptions: Iterable[Subscription], change: Change) -> list[Subscription]:
    return sorted((s for s in subscriptions if concerns(s, change)), key=lambda s: s.id)
