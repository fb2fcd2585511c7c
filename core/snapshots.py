"""The rules both runtimes apply to a snapshot before they diff it, in one place so that they cannot drift.

- `scoped`: state is kept per configured source URL, whatever URL the adapter's snapshot names.
- `judge`: may the snapshot remove keys (complete, and not suspiciously small: `core.diff.floor_problem`), is it
  the first trusted one of its source (a baseline fills the state), and does it alert (not a baseline, unless
  `baseline_alerts`)?

The embedded processor (streams/processor.py) and the Kafka producer (producers/kafka_publisher.py) call both;
they differ only in where they read what is known of the source (the SQLite state, the Redis source status).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.diff import floor_problem
from core.ports import Snapshot


@dataclass(frozen=True, slots=True)
class Verdict:
    complete: bool  # may remove the keys it does not hold
    first: bool  # no trusted snapshot of the source before: a baseline
    alerts: bool  # its changes reach subscribers
    problem: str | None  # why it must not remove anything (the source is then unhealthy)


def judge(snapshot: Snapshot, *, known_rows: int, trusted_before: bool, min_ratio: float,
          baseline_alerts: bool = False) -> Verdict:
    """`known_rows`: how many rows the source is known to have (0: unknown); `trusted_before`: a complete
    snapshot of the source was processed before."""
    problem = floor_problem(snapshot, known_rows, min_ratio)
    return Verdict(snapshot.complete and problem is None, not trusted_before, trusted_before or baseline_alerts,
                   problem)


def scoped(url: str, snapshot: Snapshot, problem: str | None = None) -> Snapshot:
    """The snapshot under the configured source URL (and `problem`, when the raw download had one)."""
    if snapshot.source == url and problem is None:
        return snapshot
    return Snapshot(snapshot.dataset, url, snapshot.records, snapshot.complete, snapshot.version,
                    snapshot.quarantined, snapshot.problem or problem, snapshot.unchanged)
