"""Consecutive weekly Alim'Confiance publications built from the real 2018-2019 inspections, with the edits a
publisher really makes between two of them.

Publication i holds the inspections up to `end_i` (one week apart, the last one up to the newest inspection) and
keeps the 365 days before its publication date, so the last one ages the oldest out. About one inspection in 25
of the last months is published late (weeks after it happened), as on the live portal. From the second
publication on, each one also:

- corrects two ratings (one down, one up: `downgrade` / `upgrade` + `updated`);
- moves three inspections to a corrected address, and one whole establishment (all its inspections) too. The
  establishment key is SIRET + normalised address, so these records change entity: they are picked so that
  their old and new entity land on different Kafka partitions under the default partitioner, which is what made
  a stream keyed by entity emit false removals;
- withdraws two inspections (`removed`), and brings back one withdrawn earlier (`new_inspection` again);
- adds two synthetic follow-up inspections of existing establishments, rated differently (`new_inspection` with
  a trend), one of them at an establishment whose address moved in the same publication;
- puts back the address moved in the publication before (an entity change back).

Deterministic: selections come from digests of the inspection numbers, salted by the publication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from producers.datasets.alimconfiance import normalise_address
from runtime.demo.snapshots import (
    RATING_CODES,
    WINDOW,
    DemoSnapshot,
    Row,
    _published,
    day_of,
    load_rows,
)

STEP = timedelta(days=7)
LAG = timedelta(days=7)
LATE_ONE_IN = 25
Identity = tuple[str, str, str]


def identity(row: Row) -> Identity:
    return str(row["numero_inspection"]), str(row["siret"] or ""), str(row["date_inspection"])


def entity(row: Row) -> str:
    return f"{row['siret'] or ''}|{normalise_address(row['adresse_2_ua'])}"


def partition(key: str, partitions: int) -> int:
    """The partition aiokafka's default partitioner gives `key` (murmur2, as the Java client)."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(key.encode(), every, every))


def digest(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4).digest(), "big")


@dataclass
class Publisher:
    """The publisher's own edits, carried from one publication to the next."""

    partitions: int
    overrides: dict[Identity, dict[str, Any]] = field(default_factory=dict)
    withdrawn: list[Identity] = field(default_factory=list)
    extras: list[Row] = field(default_factory=list)
    moved_last: list[Identity] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def apply(self, rows: Iterable[Row]) -> list[Row]:
        gone = set(self.withdrawn)
        out = [{**r, **self.overrides.get(identity(r), {})} for r in rows if identity(r) not in gone]
        return out + [dict(r) for r in self.extras]

    def edit(self, i: int, rows: list[Row], end: date) -> None:
        """Decide publication i's edits from its rows (before edits) and the previous publication's."""
        span = (end - timedelta(days=200), end - timedelta(days=60))
        pool = sorted((r for r in self.apply(rows) if span[0] <= day_of(r) <= span[1]
                       and identity(r) not in self.overrides), key=lambda r: digest(i, *identity(r)))
        self._restore(i)
        self._rate(i, pool, "Satisfaisant", "A améliorer")
        self._rate(i, pool, "A améliorer", "Satisfaisant")
        moved = [self._move(i, self._take(pool, self._movable)) for _ in range(3)]
        moved += self._move_establishment(i, pool, self.apply(rows))
        self.moved_last = moved[:1]
        self._withdraw(i, pool)
        self._follow_up(i, end, self._take(pool, lambda r: r["geores"] is not None), "A améliorer")
        self._follow_up(i, end, rows_by_id(self.apply(rows))[moved[0]], "Très satisfaisant")

    @staticmethod
    def _take(pool: list[Row], test: Callable[[Row], bool]) -> Row:
        found = next(r for r in pool if test(r))
        pool.remove(found)
        return found

    def _movable(self, row: Row) -> bool:
        old = entity(row)
        return partition(old, self.partitions) != partition(entity(_moved(row)), self.partitions)

    def _move(self, i: int, row: Row, address: str | None = None) -> Identity:
        self.overrides[identity(row)] = {"adresse_2_ua": address or _moved(row)["adresse_2_ua"]}
        self.log.append(f"{i}: address of {identity(row)[0]} corrected, entity partition changes")
        return identity(row)

    def _move_establishment(self, i: int, pool: list[Row], rows: list[Row]) -> list[Identity]:
        counts: dict[str, int] = {}
        for r in rows:
            counts[entity(r)] = counts.get(entity(r), 0) + 1
        first = self._take(pool, lambda r: counts[entity(r)] > 1 and self._movable(r))
        members = [r for r in rows if entity(r) == entity(first)]
        self.log.append(f"{i}: establishment {entity(first)} moved with its {len(members)} inspections")
        address = _moved(first)["adresse_2_ua"]
        return [self._move(i, r, address) for r in members if identity(r) not in self.overrides]

    def _restore(self, i: int) -> None:
        for back in self.moved_last:
            self.overrides.pop(back, None)
            self.log.append(f"{i}: address of {back[0]} put back")

    def _rate(self, i: int, pool: list[Row], was: str, now: str) -> None:
        row = self._take(pool, lambda r: r["synthese_eval_sanit"] == was)
        self.overrides[identity(row)] = {"synthese_eval_sanit": now,
                                         "app_code_synthese_eval_sanit": RATING_CODES[now]}
        self.log.append(f"{i}: rating of {identity(row)[0]} corrected {was} -> {now}")

    def _withdraw(self, i: int, pool: list[Row]) -> None:
        if self.withdrawn:
            back = self.withdrawn.pop(0)
            self.log.append(f"{i}: {back[0]} published again")
        for _ in range(2):
            self.withdrawn.append(identity(self._take(pool, lambda r: True)))
            self.log.append(f"{i}: {self.withdrawn[-1][0]} withdrawn")

    def _follow_up(self, i: int, end: date, origin: Row, rating: str) -> None:
        new = {**origin, "numero_inspection": f"{origin['numero_inspection']}-r{i}",
               "date_inspection": _published(end).replace(hour=0).isoformat(),
               "synthese_eval_sanit": rating, "app_code_synthese_eval_sanit": RATING_CODES[rating]}
        self.extras.append(new)
        self.log.append(f"{i}: follow-up of {origin['numero_inspection']} rated {rating}")


def rows_by_id(rows: Iterable[Row]) -> dict[Identity, Row]:
    return {identity(r): r for r in rows}


def _moved(row: Row) -> Row:
    """The row at its corrected address: a street number added, as a publisher fixing a record would."""
    number = digest(row["numero_inspection"]) % 90 + 2
    return {**row, "adresse_2_ua": f"{number} {row['adresse_2_ua'] or ''}".strip()}


def _visible(row: Row, end: date) -> bool:
    """Published by `end`: a late inspection shows up weeks after its day."""
    day = day_of(row)
    late = digest(row["numero_inspection"]) % LATE_ONE_IN == 0
    return day <= end and not (late and day + timedelta(days=14 + digest(day, row["siret"]) % 60) > end)


def build_replay(publications: int = 6, partitions: int = 4) -> tuple[list[DemoSnapshot], list[str]]:
    """`publications` weekly snapshots (the first is the baseline) and a log of the publisher's edits."""
    rows = load_rows()
    newest = max(day_of(r) for r in rows)
    publisher = Publisher(partitions)
    snapshots = []
    for i in range(publications):
        end = newest - STEP * (publications - 1 - i)
        published = end + LAG
        base = [r for r in rows if published - WINDOW <= day_of(r) and _visible(r, end)]
        if i:
            publisher.edit(i, base, end)
        label = f"publication {i}: inspections up to {end}"
        snapshots.append(DemoSnapshot(publisher.apply(base), _published(published), label))
    return snapshots, publisher.log
