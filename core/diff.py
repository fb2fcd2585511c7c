"""Diff a snapshot against the previous state of a dataset. Pure: time and data are arguments.

Rules that matter:
- an unchanged row is recognised by fingerprint equality before any field is compared;
- a row whose fields differ only cosmetically (Profile.same: case, accents, spaces, number formats, point
  jitter) is no change: stores keep the new row silently (`refreshed`);
- only a *complete* snapshot can remove keys; an incremental or incomplete one never does;
- kinds come from the dataset's Profile (new_inspection, downgrade, upgrade, aged_out, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from core.model import Change, Op, Record, change_id
from core.ports import Snapshot
from core.profiles import GENERIC, Profile


def changed_fields(before: Record, after: Record, profile: Profile = GENERIC) -> tuple[str, ...]:
    """Fields whose value moved. A field present on one side only is a layout change, not a data change:
    when a publisher adds columns (Alim'Confiance did in 2026), no record is said to be updated."""
    keys = before.fields.keys() & after.fields.keys()
    return tuple(sorted(k for k in keys
                        if k not in profile.volatile and not profile.same(k, before.fields[k], after.fields[k])))


def diff_one(before: Record | None, after: Record, *, at: datetime, version: str, profile: Profile = GENERIC,
             last_in_group: Record | None = None) -> Change | None:
    """The change from `before` to `after` for one key, or None when nothing that matters moved."""
    if before is not None and before.fingerprint == after.fingerprint:
        return None
    if before is None:
        op, changed = Op.CREATED, tuple(sorted(k for k in after.fields if k not in profile.volatile))
    else:
        op, changed = Op.UPDATED, changed_fields(before, after, profile)
        if not changed and profile.same_point(before.point, after.point):
            return None
    kinds = profile.kinds(op, before, after, last_in_group=last_in_group)
    cid = change_id(after.dataset, after.key, op, before=before, after=after, version=version)
    return Change(cid, after.dataset, after.key, op, kinds, before, after, changed, at, version)


def removal(before: Record, *, at: datetime, version: str, profile: Profile = GENERIC,
            floor: str | None = None) -> Change:
    kinds = profile.kinds(Op.REMOVED, before, None, floor=floor)
    cid = change_id(before.dataset, before.key, Op.REMOVED, before=before, after=None, version=version)
    return Change(cid, before.dataset, before.key, Op.REMOVED, kinds, before, None, (), at, version)


def latest_by_group(records: Iterable[Record], profile: Profile) -> dict[str, Record]:
    """The most recent record of every group (entity), by the profile's order field."""
    latest: dict[str, Record] = {}
    for record in records:
        seen = latest.get(record.entity)
        if seen is None or profile.order(record) >= profile.order(seen):
            latest[record.entity] = record
    return latest


def diff(previous: Mapping[str, Record], snapshot: Iterable[Record], *, complete: bool, at: datetime,
         version: str, profile: Profile = GENERIC) -> list[Change]:
    """All changes from `previous` (key → record) to `snapshot`.

    Removals are emitted only when `complete` is true: pass False for incremental feeds and for
    snapshots that failed, were truncated or look suspiciously small.
    """
    current = list(snapshot)
    pending = [(previous.get(r.key), r) for r in current]
    pending = [(b, a) for b, a in pending if b is None or b.fingerprint != a.fingerprint]
    groups = latest_by_group(previous.values(), profile) if any(b is None for b, _ in pending) else {}
    changes = [
        c for b, a in pending
        if (c := diff_one(b, a, at=at, version=version, profile=profile,
                          last_in_group=groups.get(a.entity) if b is None else None)) is not None
    ]
    if complete:
        seen = {r.key for r in current}
        floor = profile.window_floor(current)
        changes += [removal(r, at=at, version=version, profile=profile, floor=floor)
                    for k, r in previous.items() if k not in seen]
    return changes


def refreshed(previous: Mapping[str, Record], snapshot: Iterable[Record],
              changes: Iterable[Change]) -> list[Record]:
    """Records whose fingerprint moved without any change worth telling (a layout change, 1 vs 1.0):
    stores keep them so the next snapshot compares against what was really published."""
    changed = {c.key for c in changes}
    return [r for r in snapshot if r.key not in changed and (p := previous.get(r.key)) is not None
            and p.fingerprint != r.fingerprint]


def floor_problem(snapshot: Snapshot, known: int, min_ratio: float) -> str | None:
    """Why a snapshot must not be trusted to remove anything, or None: the source said so, or it claims
    completeness with fewer rows than `min_ratio` of the `known` state (a sane floor against half-published
    exports). The embedded processor and the Kafka producer apply the same rule."""
    if snapshot.problem:
        return snapshot.problem
    if snapshot.complete and known and len(snapshot.records) < min_ratio * known:
        return (f"snapshot has {len(snapshot.records)} rows, fewer than {min_ratio:.0%} of the {known} known: "
                "treated as incomplete")
    return None


def apply(previous: Mapping[str, Record], changes: Iterable[Change]) -> dict[str, Record]:
    """The state after `changes`: used by stores, and by the property 'apply(diff) == snapshot'."""
    state = dict(previous)
    for change in changes:
        if change.after is None:
            state.pop(change.key, None)
        else:
            state[change.key] = change.after
    return state
