"""URLs as they may be shown: one masking rule for settings, sources, logs and error messages.

    mask_url("redis://:hunter2@host:6379/0")            → "redis://:***@host:6379/0"
    mask_url("ods+https://p.example/d?apikey=k&where=x") → "ods+https://p.example/d?apikey=***&where=x"
    mask_text("failed: GET https://u:pw@h/x?token=t")    → "failed: GET https://u:***@h/x?token=***"

A password in the userinfo, a user alone (often a token: `https://TOKEN@host`), and the values of token-like
query parameters (apikey, token, key, secret, signature, password, auth…) are masked; the scheme, host, port,
path and the other parameters stay, so an operator can tell which endpoint is meant. Destinations (Slack tokens,
webhook paths) have stricter rules of their own in `notifiers` (`url(privacy=True)`).

Pure: string in, string out.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

MASK = "***"
_SECRET_WORDS = frozenset({"apikey", "key", "token", "secret", "signature", "sig", "password", "passwd", "pwd",
                           "pass", "auth", "authorization", "credential", "credentials", "jwt", "session"})
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_HOST = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?\.?)+|\[?[0-9A-Fa-f:.]+\]?")


def secret_param(name: str) -> bool:
    """True for a query parameter whose value may be a credential: `apikey`, `access_token`, `X-Amz-Signature`."""
    words = [w for w in re.split(r"[-_.\s]+", name.lower()) if w]
    return any(w in _SECRET_WORDS or w.endswith(("key", "token", "secret")) for w in words)


def _netloc(parts: SplitResult) -> str:
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return parts.netloc
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}@{hostport}" if colon else f"{MASK}@{hostport}"


def _query(query: str) -> str:
    if not query:
        return query
    pairs = []
    for item in query.split("&"):
        name, eq, value = item.partition("=")
        pairs.append(f"{name}={MASK}" if eq and value and secret_param(name) else item)
    return "&".join(pairs)


def mask_url(url: str) -> str:
    """`url` with its userinfo secret and token-like query values replaced by `***`, the rest as it was."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparsable netloc (a stray bracket): keep the scheme only
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://{MASK}" if sep else MASK
    if not parts.scheme or len(parts.scheme) == 1:  # a path (C:\x.csv is a path too)
        return url
    head, sep, tail = url.partition("?")
    netloc = _netloc(parts)
    if netloc != parts.netloc:
        head = head.replace(f"//{parts.netloc}", f"//{netloc}", 1)
    if sep:
        query, hash_, fragment = tail.partition("#")
        tail = _query(query) + hash_ + fragment
    return head + sep + tail


def mask_text(text: str) -> str:
    """`text` (an error message, a log line) with every URL in it masked by `mask_url`."""
    return _URL.sub(_masked_match, text) if "://" in text else text


def _masked_match(match: re.Match[str]) -> str:
    url = match.group()
    kept = url.rstrip(".,;:)]}")
    return mask_url(kept) + url[len(kept):]


def host_problem(host: str | None) -> str | None:
    """What is wrong with a URL's host name, or None: letters, digits, `-`, `_` and dots, or an IP literal."""
    if not host:
        return "no host name"
    if any(c.isspace() for c in host):
        return f"host name {host!r} contains a space"
    if len(host) > 253 or not _HOST.fullmatch(host):
        return f"host name {host!r} is not a valid DNS name or IP address"
    return None
