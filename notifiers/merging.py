"""Merging a destination's alerts, shared by both workers (the embedded outbox worker and the Kafka notifier).

A channel that merges (Slack: `MergingSender.merge_limit(channel)` > 1) is queued by destination instead of by
subscription: what is due for one Slack channel goes out as one message per rate slot, up to the limit each,
every delivery then marked done with its own idempotency key. Other channels keep one queue per subscription
and one message per delivery.

A subscription that opted in to batches (`Subscription.batch`, webhooks) keeps its own queue, cut in batches of
up to the channel's `batch_limit`: one signed request each (`application/cloudevents-batch+json`).

    queue_key(sender, delivery)     "to:<destination>" for a merging channel, else "id:<subscription id>"
    chunk_size(sender, sub)         how many of a queue's deliveries go in one message
    chunks(items, size)             consecutive runs of at most `size`
    send_chunk(sender, deliveries)  one message: a plain `send` for one delivery, `send_merged` for several
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from core.model import Delivery, Subscription
from core.ports import conforms

T = TypeVar("T")


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> None: ...


@runtime_checkable
class MergingSender(Sender, Protocol):
    """notifiers.Channels: how many alerts a channel merges into one message, and the merged send."""

    def merge_limit(self, channel: str) -> int: ...

    async def send_merged(self, deliveries: Sequence[Delivery]) -> None: ...


@runtime_checkable
class BatchingSender(Sender, Protocol):
    """notifiers.Channels: how many alerts a channel sends in one batch to a subscription that opted in."""

    def batch_limit(self, channel: str) -> int: ...


def chunk_size(sender: Sender, subscription: Subscription) -> int:
    """A merging channel's limit; a batching subscription's channel batch limit; 1 otherwise."""
    limit = merge_limit(sender, subscription.channel)
    if limit == 1 and subscription.batch and conforms(sender, BatchingSender):
        return max(1, sender.batch_limit(subscription.channel))
    return limit


def merge_limit(sender: Sender, channel: str) -> int:
    return max(1, sender.merge_limit(channel)) if conforms(sender, MergingSender) else 1


def queue_key(sender: Sender, delivery: Delivery) -> str:
    """Deliveries of one queue go one after another: one subscription's, or one merging destination's."""
    subscription = delivery.subscription
    if merge_limit(sender, subscription.channel) > 1:
        return f"to:{subscription.destination}"
    return f"id:{subscription.id}"


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def send_chunk(sender: Sender, deliveries: Sequence[Delivery]) -> None:
    """One message for `deliveries` (one destination); it succeeds or fails for all of them. A subscription that
    opted in to batches gets a batch even of one (its endpoint always reads the batch format)."""
    if len(deliveries) == 1 and chunk_size(sender, deliveries[0].subscription) == 1:
        await sender.send(deliveries[0])
        return
    if not conforms(sender, MergingSender):
        raise TypeError("merged deliveries need a MergingSender")
    await sender.send_merged(deliveries)
