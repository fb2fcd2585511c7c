"""Small URL helpers shared by the sources: secret masking (core.urls), loopback checks, `#key=a+b` fragments."""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, unquote, urlsplit

from core.urls import mask_url


def mask(url: str) -> str:
    """The URL with its password and secret query parameters (apikey, token…) replaced by `***`."""
    return mask_url(url)


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
