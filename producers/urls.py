"""Small URL helpers shared by the sources: secret masking, loopback checks, `#key=a+b` fragments."""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

SECRET_PARAMS = frozenset({"apikey", "api_key", "token", "access_token"})
MASK = "****"


def mask(url: str) -> str:
    """The URL with secret query parameters (apikey, token…) and any password replaced by `****`."""
    parts = urlsplit(url)
    query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_tls_or_loopback(parts: SplitResult, original: str) -> None:
    """Plain http is for local test servers only: credentials and data must not cross a network in clear."""
    if parts.scheme.endswith("+http") and not is_loopback(parts.hostname):
        raise ValueError(f"{parts.scheme}:// is allowed only for loopback hosts (localhost, 127.0.0.1, ::1); "
                         f"use the https variant for {mask(original)}")


def fragment_options(url: str) -> dict[str, str]:
    """`#dataset=x&key=a+b` → {"dataset": "x", "key": "a+b"}; `+` is kept (it joins key fields)."""
    fragment = urlsplit(url).fragment
    options: dict[str, str] = {}
    for item in filter(None, fragment.split("&")):
        name, _, value = item.partition("=")
        options[unquote(name).strip().lower()] = unquote(value).strip()
    return options
