"""The text form of a moment in the embedded runtime's SQLite file, one format for every table and both packages.

The stream processor writes the outbox's `next_at` and `created_at` (streams/sqlite.py); the notifier compares
`next_at` with its own stamps to find what is due and writes retries and holds (notifiers/outbox_sqlite.py).
SQLite compares the column as text, so every writer must produce the same fixed-width form:

    stamp(datetime(2026, 3, 2, 23, 30, tzinfo=PARIS)) → "2026-03-02T22:30:00.000000+00:00"
"""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(moment: datetime) -> str:
    """A fixed-width UTC ISO string (microseconds always written), so that stamps compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
