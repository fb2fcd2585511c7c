"""HTTP plumbing shared by the sources: opening a response with retries, and reading bodies whole.

Retry policy is data (`RetryPolicy`): 429, 5xx and connection errors are retried with exponential
backoff and jitter; a server's own wait (`Retry-After`, the Opendatasoft 429 body's `reset_time`) is
honoured as given, capped by `max_wait`. Only opening a response is retried: a body that breaks
midway is reported as a TruncatedDownload, never silently downloaded twice.

Progress of a long download is reported, never printed: a source's `report_downloads(callback)` has every body it
streams call `callback(received, total)` per chunk (total: the Content-Length, None when unknown or compressed)
and once more as `callback(received, received)` when the body is complete (runtime/progress.py draws the bar).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from core.ports import RawSnapshot
from producers.errors import EndpointMissing, SourceUnavailable, TruncatedDownload, UnreadableContent
from producers.urls import mask

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]
Downloaded = Callable[[int, int | None], None]  # (bytes received, total or None); received == total: done
CHUNK = 1 << 16
_ERROR_BODY_LIMIT = 4096


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait. `sleep` and `clock` are injected so tests run instantly."""

    attempts: int = 5
    backoff: float = 1.0
    max_wait: float = 60.0
    sleep: Sleep = asyncio.sleep
    clock: Clock = utc_now
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, error: SourceUnavailable) -> float:
        """Seconds to wait before attempt `attempt + 1`: the server's word, else backoff with jitter."""
        if error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_wait)
        ceiling = min(self.max_wait, self.backoff * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + self.rng.random() / 2)


def _retry_after(headers: Mapping[str, str], body: bytes, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date) or an ODS quota body's reset_time."""
    value = headers.get("Retry-After")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                return (parsedate_to_datetime(value) - now).total_seconds()
            except (TypeError, ValueError):
                pass
    try:
        reset = orjson.loads(body).get("reset_time")
        return (datetime.fromisoformat(str(reset)) - now).total_seconds() if reset else None
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None


def _reason(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return " ".join(body[:200].decode("utf-8", errors="replace").split())
    if isinstance(doc, dict):
        return str(doc.get("message") or doc.get("error") or doc.get("error_code") or "")[:200]
    return ""


def status_error(status: int, url: str, headers: Mapping[str, str], body: bytes, now: datetime) -> Exception:
    """The error for a non-200 answer: retriable for 429 and 5xx, EndpointMissing for 404/400."""
    reason = _reason(body)
    message = f"HTTP {status} from {mask(url)}" + (f": {reason}" if reason else "")
    if status in (400, 404):
        return EndpointMissing(message)
    retriable = status == 429 or status >= 500
    wait = _retry_after(headers, body, now) if retriable else None
    return SourceUnavailable(message, status=status, retriable=retriable, retry_after=wait)


async def open_once(session: aiohttp.ClientSession, url: str, params: Mapping[str, str],
                    limits: aiohttp.ClientTimeout, now: Clock, *,
                    headers: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
    """One GET; the response is returned open (status 200) for the caller to stream and release."""
    try:
        response = await session.get(url, params=params, timeout=limits, headers=headers)
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise SourceUnavailable(f"cannot reach {mask(url)}: {type(exc).__name__} {exc}".strip(),
                                retriable=True) from exc
    except aiohttp.ClientError as exc:
        raise SourceUnavailable(f"request to {mask(url)} failed: {type(exc).__name__} {exc}".strip()) from exc
    if response.status == 200:
        return response
    try:
        body = await response.content.read(_ERROR_BODY_LIMIT)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    finally:
        response.release()
    raise status_error(response.status, url, response.headers, body, now())


async def open_with_retries(session: aiohttp.ClientSession, url: str, params: Mapping[str, str],
                            limits: aiohttp.ClientTimeout, policy: RetryPolicy, *,
                            headers: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
    for attempt in range(1, policy.attempts + 1):
        try:
            return await open_once(session, url, params, limits, policy.clock, headers=headers)
        except SourceUnavailable as exc:
            if not exc.retriable or attempt == policy.attempts:
                raise
            wait = policy.delay(attempt, exc)
            log.warning("attempt %d/%d failed (%s); retrying in %.1f s", attempt, policy.attempts, exc, wait,
                        extra={"url": mask(url)})
            await policy.sleep(wait)
    raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover


def _check_length(response: aiohttp.ClientResponse, received: int) -> None:
    declared = response.content_length
    if declared is not None and "Content-Encoding" not in response.headers and received != declared:
        raise TruncatedDownload(f"body has {received} bytes, Content-Length says {declared}")


def _declared(response: aiohttp.ClientResponse) -> int | None:
    """The body's length when known before reading it (not for a compressed body: that counts encoded bytes)."""
    return None if "Content-Encoding" in response.headers else response.content_length


async def iter_chunks(response: aiohttp.ClientResponse, progress: Downloaded | None = None) -> AsyncIterator[bytes]:
    """The body in chunks; a connection lost midway or a short body raises TruncatedDownload. `progress` is told
    the bytes received after each chunk, and `(received, received)` at the end of a complete body."""
    received, total = 0, _declared(response)
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            received += len(chunk)
            if progress is not None:
                progress(received, total)
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TruncatedDownload(f"connection lost after {received} bytes: {type(exc).__name__}") from exc
    _check_length(response, received)
    if progress is not None:
        progress(received, received)


async def read_all(response: aiohttp.ClientResponse, progress: Downloaded | None = None) -> bytes:
    return b"".join([chunk async for chunk in iter_chunks(response, progress)])


def client_timeout(*, connect: float, read: float, total: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_read=read)


def body_json(data: bytes, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnreadableContent(f"{what} is not JSON: {exc}") from exc


class HttpSource:
    """What every HTTP source shares: a masked `url`, a shared or owned session, and a `fetch` that
    never raises (source trouble becomes an incomplete RawSnapshot with a `problem`)."""

    def __init__(self, url: str, session: aiohttp.ClientSession | None) -> None:
        self._raw_url = url
        self.url = mask(url)
        self._session = session
        self._own_session = session is None
        self.downloaded: Downloaded | None = None

    def report_downloads(self, callback: Downloaded | None) -> None:
        """Have long downloads tell `callback(received, total)` as they go (None: stop telling)."""
        self.downloaded = callback

    def geturl(self, *, privacy: bool = True) -> str:
        """The source URL; with `privacy` (default) its secrets are masked."""
        return self.url if privacy else self._raw_url

    async def fetch(self, last_version: str | None) -> RawSnapshot:
        try:
            return await self._fetch(last_version)
        except Exception as exc:  # the contract: source trouble never escapes fetch
            log.exception("unexpected failure while fetching", extra={"source": self.url})
            return RawSnapshot(self.url, [], complete=False, version="",
                               problem=f"unexpected {type(exc).__name__}: {exc}")

    async def _fetch(self, last_version: str | None) -> RawSnapshot:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
