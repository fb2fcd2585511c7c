"""What every channel module shares: the plugin record, the options channels are built from, and helpers.

A channel module (`console.py`, `webhook.py`, `slack.py`, later `telegram.py`) exposes one `PLUGIN`:
its URL schemes, a `parse(url) -> Target` that validates and normalises a destination, and a
`build(options) -> Channel`. A Target knows how to print itself with secrets masked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from core.errors import DeliveryError, SubscriptionError
from core.model import Delivery
from core.ports import Channel
from notifiers.ssrf import NetGuard

DEFAULT_TIMEOUT = 30.0
MASK = "***"
T = TypeVar("T")
Refused = Callable[[str, str], Awaitable[None]]


class Target(Protocol):
    """A parsed, valid destination URL."""

    def url(self, privacy: bool = True) -> str: ...


@dataclass(frozen=True, slots=True)
class Options:
    """What channels are built from; runtime fills it from settings."""

    session: aiohttp.ClientSession
    timeout: float = DEFAULT_TIMEOUT
    slack_token: str | None = None
    slack_base_url: str = "https://slack.com/api/"
    console_stream: IO[str] | None = None
    telegram_token: str | None = None
    telegram_base_url: str = "https://api.telegram.org/bot"
    on_refused: Refused | None = None  # (destination, reason): it refused for good; runtime disables its subscriptions
    webhook_guard: NetGuard = field(default_factory=NetGuard)  # where partner URLs may lead (ssrf.py)


@dataclass(frozen=True, slots=True)
class Plugin:
    """One channel: `name` is `Subscription.channel` (the scheme before `+`), `schemes` the URL schemes it takes."""

    name: str
    schemes: tuple[str, ...]
    parse: Callable[[str], Target]
    build: Callable[[Options], Channel]


def split_scheme(url: str) -> tuple[str, str]:
    """`("webhook+https", "host/path")`; the scheme lower-cased. SubscriptionError when there is no `://`."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not scheme:
        raise SubscriptionError(f"destination must be a URL such as slack://C0123ABCD, got {url!r}")
    return scheme.lower(), rest


def target_of(delivery: Delivery, parse: Callable[[str], T]) -> T:
    """Parse the delivery's destination; a destination that cannot be parsed will never work."""
    try:
        return parse(delivery.subscription.destination)
    except SubscriptionError as exc:
        raise DeliveryError(f"invalid destination: {exc}", retriable=False) from exc


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


_TOKEN_LIKE = re.compile(r"(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-]{16,}")


def mask_http_url(url: str) -> str:
    """Mask what may be secret in an http(s) URL: the password, query values, token-like path segments."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if has_password else f"{user}@{hostport}"
    path = "/".join(f"{seg[:4]}{MASK}" if _TOKEN_LIKE.fullmatch(seg) else seg for seg in parts.path.split("/"))
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, ""))


_URL = re.compile(r"https?://[^\s'\"<>]+")


def scrub(message: str) -> str:
    """`message` with every http(s) URL in it masked: library errors sometimes quote the full URL."""
    return _URL.sub(lambda m: mask_http_url(m.group()), message)


def mask_unparsed(url: str) -> str:
    """For a destination no plugin accepts: anything after the scheme may be a secret, so only the scheme shows."""
    scheme, sep, _ = url.strip().partition("://")
    return f"{scheme}://{MASK}" if sep else MASK
