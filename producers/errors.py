"""Errors of the producers package. `OdsSource.fetch` and `CsvSource.fetch` never let them out:
they become a RawSnapshot with `complete=False` and the error's one-line message as `problem`.

    VigieError (core.errors)
    └── SourceError                 a source could not deliver a whole, readable snapshot
        ├── SourceUnavailable       the portal or server answered an error status, or could not be reached
        │   ├── retriable           True for 429, 5xx and connection errors
        │   ├── retry_after         seconds the server asked us to wait, when it said (Retry-After, reset_time)
        │   └── status              the HTTP status, None for connection errors
        ├── EndpointMissing         an export endpoint answered 404/400: try the next way of downloading
        ├── TruncatedDownload       the body ended early (cut line, closed connection, Content-Length mismatch)
        └── UnreadableContent       the body is not what was asked for (HTML page, binary, no header, bad JSON)
"""

from __future__ import annotations

from core.errors import VigieError


class SourceError(VigieError):
    """A source could not deliver a complete, readable snapshot."""


class SourceUnavailable(SourceError):
    """An error status or a connection failure. Retry policy is data: `retriable`, `retry_after`."""

    def __init__(self, message: str, *, status: int | None = None, retriable: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retriable = retriable
        self.retry_after = retry_after


class EndpointMissing(SourceError):
    """The endpoint does not exist or refuses this request (404/400): fall back to another one."""


class TruncatedDownload(SourceError):
    """The body ended before the whole snapshot arrived."""


class UnreadableContent(SourceError):
    """The body is not a dataset in the expected format."""
