"""`webhook+https://host/path`: a signed CloudEvent POSTed to a partner's endpoint.

The body is `core.render.cloudevent(delivery)` as JSON (`application/cloudevents+json`), signed the
Standard Webhooks way with the subscription's own `whsec_…` secret: `webhook-id` is the delivery's
idempotency key, so a receiver that dedupes on it sees each alert once however often we retry.
`webhook+http://` is accepted for loopback hosts only (local receivers, tests).

Every POST goes through the outbound guard (`ssrf.py`, built from `Options.webhook_guard`): the channel owns a
session whose resolver and sockets refuse internal addresses unless explicitly allowed, with connect and read
timeouts, no redirects followed and at most `max_body` bytes of the answer read. A refused address is a
DeliveryError that is not retriable.

Status → DeliveryError: 2xx ok; 408, 425, 429, 5xx, timeouts and connection errors are retriable
(honouring `Retry-After`); 410 means the endpoint is gone for good (DestinationGone, reported to `on_refused`:
runtime/ disables every subscription to it); any other status is not retriable.

**Batches.** A subscription with `batch` set gets what is due for it in one POST of up to `BATCH_LIMIT` events:
a JSON array of the same CloudEvents (`application/cloudevents-batch+json`, the CloudEvents JSON batch format),
signed as one message over the whole body; its `webhook-id` is `batch_` + a hash of the deliveries' idempotency
keys (a retried batch keeps it), and each event's `id` is still its delivery's key for per-event dedupe.

**Secret rotation.** During a rotation's overlap the subscription has two secrets and `webhook-signature` carries
one `v1,` signature per secret, space-separated, so a receiver verifying with either accepts every delivery.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from core import render
from core.errors import DeliveryError, DestinationGone, SubscriptionError
from core.model import Delivery, stable_hash
from core.ports import Channel
from notifiers.base import (
    DEFAULT_TIMEOUT,
    Options,
    Plugin,
    Refused,
    mask_http_url,
    parse_retry_after,
    scrub,
    split_scheme,
    target_of,
)
from notifiers.ssrf import CONNECT_TIMEOUT, Blocked

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
BATCH_LIMIT = 100
USER_AGENT = "Vigie-Webhooks/1"
RETRIABLE_STATUSES = frozenset({408, 425, 429})
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
MAX_RESPONSE_BYTES = 64 * 1024


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret: `whsec_` + 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    endpoint: str  # the http(s) URL we POST to

    @classmethod
    def parse(cls, url: str) -> WebhookTarget:
        scheme, rest = split_scheme(url)
        if scheme not in ("webhook+https", "webhook+http"):
            raise SubscriptionError(f"webhook destination must start with webhook+https://, got {scheme}://")
        http = scheme.removeprefix("webhook+")
        parts = urlsplit(f"{http}://{rest}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise SubscriptionError(f"webhook URL has an invalid port: {exc}") from exc
        if not host:
            raise SubscriptionError("webhook URL has no host: expected webhook+https://host/path")
        if http == "http" and not _is_loopback(host):
            raise SubscriptionError(
                f"webhook+http:// is only allowed for loopback hosts (127.0.0.0/8, localhost, ::1), not {host}: "
                "use webhook+https://")
        netloc = parts.netloc.rpartition("@")[0]
        hostport = f"[{host}]" if ":" in host else host
        hostport += "" if port is None else f":{port}"
        netloc = f"{netloc}@{hostport}" if netloc else hostport
        return cls(urlunsplit((http, netloc, parts.path or "/", parts.query, "")))

    def url(self, privacy: bool = True) -> str:
        return "webhook+" + (mask_http_url(self.endpoint) if privacy else self.endpoint)


def status_error(status: int, retry_after: float | None, where: str) -> DeliveryError | None:
    """The DeliveryError an HTTP status means, or None for success."""
    if 200 <= status < 300:
        return None
    if status == 410:
        return DestinationGone(f"webhook endpoint is gone (410 Gone): {where}")
    if status in RETRIABLE_STATUSES or status >= 500:
        return DeliveryError(f"webhook endpoint answered {status}: {where}", retriable=True, retry_after=retry_after)
    return DeliveryError(f"webhook endpoint refused the event with {status}: {where}", retriable=False)


@functools.lru_cache(maxsize=4096)
def _signer(secret: str) -> Webhook:
    """The signer of a secret, decoded once (the cache keeps no failure: a bad secret raises every time)."""
    return Webhook(secret)


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> WebhookTarget:
    return WebhookTarget.parse(url)


def signed_headers(secret: str | Sequence[str], msg_id: str, at: datetime, body: str,
                   content_type: str = CONTENT_TYPE) -> dict[str, str]:
    """Standard Webhooks headers for `body`, one `v1,` signature per secret (space-separated: during a rotation's
    overlap both the new and the previous secret sign); DeliveryError (not retriable) if a secret is unusable."""
    try:
        signature = " ".join(_signer(one).sign(msg_id, at.astimezone(UTC), body)
                             for one in ((secret,) if isinstance(secret, str) else secret))
    except (binascii.Error, EmptyWebhookSecretError, ValueError) as exc:
        raise DeliveryError("webhook signing secret is not a valid whsec_ base64 secret", retriable=False) from exc
    return {
        "content-type": content_type, "user-agent": USER_AGENT,
        "webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookChannel:
    """POSTs signed CloudEvents; raises DeliveryError saying whether a retry may help."""

    scheme = "webhook"

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], datetime] = _utcnow, connect_timeout: float = CONNECT_TIMEOUT,
                 max_body: int = MAX_RESPONSE_BYTES, own_session: bool = False,
                 on_refused: Refused | None = None) -> None:
        self._on_refused = on_refused
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(connect_timeout, timeout),
                                              sock_read=timeout)
        self._clock = clock
        self._max_body = max_body
        self._own_session = own_session

    batch_limit = BATCH_LIMIT

    async def send(self, delivery: Delivery) -> None:
        await self._signed_post(delivery, delivery.key, _encoded(render.cloudevent(delivery)), CONTENT_TYPE)

    async def send_batch(self, deliveries: Sequence[Delivery]) -> None:
        """One POST of `deliveries` (one subscription's) as a CloudEvents JSON batch, signed over the whole body."""
        first = deliveries[0]
        if any(d.subscription.id != first.subscription.id for d in deliveries):
            raise DeliveryError("a webhook batch holds one subscription's deliveries", retriable=False)
        body = _encoded([render.cloudevent(d) for d in deliveries])
        await self._signed_post(first, batch_id(deliveries), body, BATCH_CONTENT_TYPE)

    async def _signed_post(self, delivery: Delivery, msg_id: str, body: str, content_type: str) -> None:
        target = target_of(delivery, _target)  # parsed once per destination
        now = self._clock()
        secrets_now = delivery.subscription.signing_secrets(now)
        if not secrets_now:
            raise DeliveryError("webhook subscription has no signing secret", retriable=False)
        headers = signed_headers(secrets_now, msg_id, now, body, content_type)
        status, retry_after = await self._post(target, body, headers)
        if not 200 <= status < 300 and (error := status_error(status, retry_after, target.url())):
            await self._refused(delivery, error)
            raise error
        if log.isEnabledFor(logging.DEBUG):  # masking the URL costs more than the check
            log.debug("webhook %s accepted %s with %d", target.url(), msg_id, status, extra={
                "change_id": delivery.change.id, "subscription_id": delivery.subscription.id,
                "channel": self.scheme})

    async def _refused(self, delivery: Delivery, error: DeliveryError) -> None:
        """A 410 Gone: every subscription to the endpoint gets disabled with the reason (`Options.on_refused`)."""
        if isinstance(error, DestinationGone) and self._on_refused is not None:
            await self._on_refused(delivery.subscription.destination, str(error))

    async def _post(self, target: WebhookTarget, body: str, headers: dict[str, str]) -> tuple[int, float | None]:
        try:
            async with self._session.post(target.endpoint, data=body.encode(), headers=headers,
                                          timeout=self._timeout, allow_redirects=False) as response:
                await response.content.read(self._max_body)  # at most this much of the answer is read
                return response.status, parse_retry_after(response.headers.get("Retry-After"), self._clock())
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, Blocked):
                raise DeliveryError(f"webhook {target.url()} not sent: {exc.os_error}", retriable=False) from exc
            raise _unreachable(target, exc) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(target, exc) from exc

    async def aclose(self) -> None:
        if self._own_session:
            await self._session.close()


def batch_id(deliveries: Sequence[Delivery]) -> str:
    """The `webhook-id` of a batch: stable for the same deliveries, so a retried batch is recognised."""
    return "batch_" + stable_hash(*(d.key for d in deliveries))


def _encoded(event: object) -> str:
    try:
        return orjson.dumps(event).decode()
    except TypeError as exc:
        raise DeliveryError(f"the event cannot be encoded as JSON: {exc}", retriable=False) from exc


def _unreachable(target: WebhookTarget, exc: Exception) -> DeliveryError:
    reason = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return DeliveryError(f"webhook {target.url()} unreachable: {reason}", retriable=True)


def build(options: Options) -> Channel:
    """The channel on a session of its own, through the outbound guard."""
    guard = options.webhook_guard
    return WebhookChannel(guard.session(), timeout=options.timeout, connect_timeout=guard.connect_timeout,
                          max_body=guard.max_body, own_session=True, on_refused=options.on_refused)


PLUGIN = Plugin("webhook", ("webhook+https", "webhook+http"), WebhookTarget.parse, build)
