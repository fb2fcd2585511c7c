"""Ports: what the processor and workers need from the outside world. Only runtime/ picks adapters.

Every store has an in-process implementation (SQLite) and a distributed one (Redis or Kafka);
each passes the same contract suite in tests/contract/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeGuard, TypeVar, cast, runtime_checkable

from core.model import Change, Delivery, Record, Subscription


@dataclass(frozen=True, slots=True)
class RawSnapshot:
    """What a source fetched: raw rows, whether they are the whole dataset, and the version seen."""

    source: str
    rows: list[dict[str, Any]]
    complete: bool
    version: str
    unchanged: bool = False
    problem: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Quarantined:
    source: str
    reason: str
    row: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Records ready to diff. `complete` False means: never emit removals from this one."""

    dataset: str
    source: str
    records: list[Record]
    complete: bool
    version: str
    quarantined: list[Quarantined] = field(default_factory=list)
    problem: str | None = None
    unchanged: bool = False


class Source(Protocol):
    url: str

    async def fetch(self, last_version: str | None) -> RawSnapshot: ...

    async def aclose(self) -> None: ...


class Adapter(Protocol):
    """Turns raw rows of one dataset into Records; unreadable rows come back quarantined."""

    dataset: str

    def to_snapshot(self, raw: RawSnapshot) -> Snapshot: ...


class SubscriptionStore(Protocol):
    async def put(self, subscription: Subscription) -> None: ...

    async def get(self, subscription_id: str) -> Subscription | None: ...

    async def delete(self, subscription_id: str) -> bool: ...

    async def all(self) -> list[Subscription]: ...

    async def aclose(self) -> None: ...


DEFAULT_LIMIT = 20


class CurrentView(Protocol):
    """The latest record of each entity, by location and rating ("safe places near me").

    Semantics and the two implementations (SQLite R*Tree, Redis GEO): streams/view.py.
    """

    dataset: str

    async def upsert(self, record: Record) -> bool:
        """Show `record` for its entity unless the entity shows a newer one; whether it is shown now."""
        ...

    async def remove(self, record: Record) -> bool:
        """Drop the entity if it shows `record` (same key); whether anything changed."""
        ...

    async def get(self, entity: str) -> Record | None: ...

    async def near(self, lat: float, lon: float, radius_m: float, *, max_rating: int | None = None,
                   limit: int = DEFAULT_LIMIT) -> list[tuple[Record, float]]:
        """Records within `radius_m` metres, nearest first, with their distance in metres."""
        ...

    async def apply(self, changes: Iterable[Change]) -> int:
        """Fold changes of this view's dataset in, in order (others are skipped); how many changed the view."""
        ...

    async def aclose(self) -> None: ...



class Channel(Protocol):
    """One way to reach people (`slack`, `webhook`, `console`, `tg`). Raises DeliveryError, never returns False."""

    scheme: str

    async def send(self, delivery: Delivery) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class MergingChannel(Channel, Protocol):
    """A channel that can say several alerts to one destination in one message (Slack, to stay ~1 msg/s).

    `merge_limit` caps how many go in one message; `send_merged` gets 1..merge_limit deliveries that share
    their destination, and succeeds or fails for all of them at once."""

    merge_limit: int

    async def send_merged(self, deliveries: Sequence[Delivery]) -> None: ...


@runtime_checkable
class BatchingChannel(Channel, Protocol):
    """A channel that can POST several alerts of one subscription in one request when it opted in
    (`Subscription.batch`: webhooks, as a CloudEvents JSON batch); `send_batch` succeeds or fails for all."""

    batch_limit: int

    async def send_batch(self, deliveries: Sequence[Delivery]) -> None: ...


class Outbox(Protocol):
    async def pending(self, limit: int, now: datetime) -> list[tuple[Delivery, int]]: ...

    async def delivered_many(self, sent: Sequence[tuple[str, datetime]]) -> None:
        """These deliveries (key, when their destination accepted it) are done, recorded in one write: the worker
        marks a drained batch at once. Until then a crash sends them again (receivers dedupe by key)."""
        ...

    async def failed(self, key: str, attempts: int, reason: str, retry_at: datetime | None) -> None: ...

    async def dropped(self, key: str, reason: str) -> None:
        """Never to be sent (its subscription was deleted, paused or disabled after it matched)."""
        ...

    async def hold(self, key: str, until: datetime) -> None:
        """Not before `until` (a digest or quiet hours, core/schedule.py); a held delivery does not hold back its
        subscription's later ones (an urgent alert goes past it)."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that will not be retried any more (attempts exhausted, or refused for good), and why."""

    key: str  # the delivery's idempotency key: its id in `vigie deliveries` and the API
    subscription_id: str
    channel: str
    change_id: str
    kind: str
    attempts: int
    reason: str


class DeadLetters(Protocol):
    """Dead letters of every channel: the embedded outbox's (status dead) or the `dlq.deliveries.<channel>` topics."""

    async def dead(self, limit: int = 1000) -> list[DeadLetter]:
        """Those not replayed yet, most recent first."""
        ...

    async def replay(self, key: str) -> bool:
        """Queue the dead letter `key` again, as a first attempt, due now; False when there is none."""
        ...


class ChangeLog(Protocol):
    """The stored change log the catch-up feed and previews read (SQLite `changes` table, or a Redis stream).

    A position is the log's own, opaque to callers (a rowid, a stream id); entries come oldest first."""

    async def after(self, position: str | None, limit: int) -> list[tuple[str, Change]]:
        """Up to `limit` entries after `position` (None: from the oldest kept)."""
        ...

    async def since(self, moment: datetime, limit: int) -> list[Change]:
        """Up to `limit` changes logged at or after `moment`, oldest first."""
        ...

    async def aclose(self) -> None: ...


P = TypeVar("P")
_CONFORMS: dict[tuple[type, type], bool] = {}


def conforms(obj: object, protocol: Callable[..., P]) -> TypeGuard[P]:
    """`isinstance(obj, protocol)` for a runtime_checkable Protocol class, decided once per class of `obj`: that
    check walks every member of the protocol, and on a notifier's hot path it cost more than signing the webhook.
    (Typed as a callable: mypy refuses a protocol where `type[P]` is expected.)"""
    kind = cast(type, protocol)
    key = (type(obj), kind)
    found = _CONFORMS.get(key)
    if found is None:
        found = _CONFORMS[key] = isinstance(obj, kind)
    return found
