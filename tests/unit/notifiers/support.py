"""Factories for notifier tests: deliveries built from core types, a clock, and an in-memory Outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core.geo import AdminCodes, Circle, Point
from core.model import Change, Delivery, Op, Record, Subscription, change_id
from notifiers.ssrf import NetGuard, NetPolicy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# the local webhook receivers listen on loopback, which the outbound guard refuses unless told otherwise
LOCAL_RECEIVERS = NetGuard(NetPolicy.allowing(["127.0.0.0/8", "::1"]))
HERE = Point(45.764, 4.8357)


def record(key: str = "insp-1", *, rating: int = 3, name: str = "Boulangerie du Port") -> Record:
    fields = {"name": name, "address": "3 quai Saint-Antoine", "postcode": "69002", "commune": "Lyon",
              "date_inspection": "2026-02-27", "activity": "Boulangerie-Pâtisserie"}
    return Record(dataset="alimconfiance", key=key, fields=fields, fingerprint=f"fp-{key}-{rating}", point=HERE,
                  admin=AdminCodes(commune="69382", postcode="69002", departement="69", region="84"),
                  group=f"etab-{key}", rating=rating)


def change(key: str = "insp-1", *, rating: int = 3) -> Change:
    after = record(key, rating=rating)
    return Change(
        id=change_id("alimconfiance", key, Op.CREATED, before=None, after=after, version="v1"),
        dataset="alimconfiance", key=key, op=Op.CREATED, kinds=("new_inspection", "created"), before=None,
        after=after, changed=(), detected_at=T0, source_version="v1")


def subscription(destination: str, *, sub_id: str = "sub-1", secret: str | None = None,
                 lang: str = "fr") -> Subscription:
    return Subscription(sub_id, Circle(HERE, 1000), destination, lang=lang, secret=secret)


def delivery(destination: str, *, sub_id: str = "sub-1", key: str = "insp-1", secret: str | None = None,
             lang: str = "fr") -> Delivery:
    return Delivery.of(change(key), subscription(destination, sub_id=sub_id, secret=secret, lang=lang))


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Entry:
    seq: int
    delivery: Delivery
    next_at: datetime
    attempts: int = 0
    status: str = "pending"  # pending | delivered | dead
    reason: str | None = None
    delivered_at: datetime | None = None


@dataclass
class MemoryOutbox:
    """The Outbox port in memory, with the SQLite outbox's semantics.

    `pending` returns due deliveries in outbox order, holding back every delivery of a subscription
    that follows one of its pending deliveries not yet due (so a retry keeps the subscription's order).
    """

    entries: dict[str, Entry] = field(default_factory=dict)
    pending_calls: int = 0
    delivered_writes: list[list[str]] = field(default_factory=list)  # the keys of each delivered_many

    def add(self, *deliveries: Delivery, at: datetime = T0) -> None:
        for d in deliveries:
            self.entries[d.key] = Entry(len(self.entries), d, at)

    def __getitem__(self, key: str) -> Entry:
        return self.entries[key]

    async def pending(self, limit: int, now: datetime) -> list[tuple[Delivery, int]]:
        self.pending_calls += 1
        held: set[str] = set()
        due: list[tuple[Delivery, int]] = []
        for entry in sorted(self.entries.values(), key=lambda e: e.seq):
            sub = entry.delivery.subscription.id
            if entry.status not in ("pending", "held") or sub in held:
                continue
            if entry.next_at > now:
                if entry.status == "pending":  # a retry holds back what follows; a digest or quiet hours do not
                    held.add(sub)
                continue
            due.append((entry.delivery, entry.attempts))
            if len(due) == limit:
                break
        return due

    async def delivered_many(self, sent: Sequence[tuple[str, datetime]]) -> None:
        self.delivered_writes.append([key for key, _ in sent])
        for key, at in sent:
            entry = self.entries[key]
            entry.status, entry.delivered_at, entry.reason = "delivered", at, None

    async def dropped(self, key: str, reason: str) -> None:
        entry = self.entries[key]
        entry.status, entry.reason = "dropped", reason

    async def hold(self, key: str, until: datetime) -> None:
        entry = self.entries[key]
        entry.status, entry.next_at = "held", until

    async def failed(self, key: str, attempts: int, reason: str, retry_at: datetime | None) -> None:
        entry = self.entries[key]
        entry.attempts, entry.reason = attempts, reason
        if retry_at is None:
            entry.status = "dead"
        else:
            entry.next_at = retry_at
