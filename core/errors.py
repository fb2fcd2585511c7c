"""Errors of the pure core.

    VigieError
    ├── RecordError            a raw row cannot become a Record (quarantined, never fatal)
    ├── EnvelopeError          a bus message is not a valid Vigie envelope (dead-lettered)
    ├── SubscriptionError      a subscription is inconsistent (bad area, bad filter)
    ├── DeliveryError          a destination refused or failed a delivery
    │   ├── retriable          True when trying again later may succeed
    │   ├── retry_after        seconds the destination asked us to wait, if it said
    │   └── DestinationGone    refused for good (revoked token, deleted or archived channel): disable it
    ├── PublishError           a subscription write is stored but did not reach the bus (published later)
    │   └── retriable          True when trying again later may succeed
    └── StoreLost              the subscription store lost its data (a Redis restarted empty): held, not dropped
"""

from __future__ import annotations


class VigieError(Exception):
    """Base class of every error Vigie raises on purpose."""


class RecordError(VigieError):
    """A raw row cannot be turned into a Record; `reason` says why, in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EnvelopeError(VigieError):
    """A message is not a valid envelope (bad JSON, unknown type, missing attribute)."""


class SubscriptionError(VigieError):
    """A subscription's area, filter or destination is invalid."""


class DeliveryError(VigieError):
    """A destination did not accept a delivery. Retry policy is data, not control flow."""

    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


class DestinationGone(DeliveryError):
    """The destination will never accept anything again: every subscription to it gets disabled with the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class PublishError(VigieError):
    """A subscription write was stored but not published; the store is ahead of the bus until it is."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class StoreLost(VigieError):
    """The subscription store has lost its data (its marker key is gone: a Redis that came back empty) while
    the bus still names its subscriptions. Deliveries are held, never dropped, until the store is restored."""

    def __init__(self, evidence: str) -> None:
        super().__init__(
            f"the subscription store has lost its data {evidence}: Redis restarted empty or was flushed "
            "(its marker key is missing); deliveries are held, not dropped. Fix: restore Redis from its "
            "append-only file or a backup (webhook secrets exist only there), then run "
            "`vigie subscriptions republish --all`")
