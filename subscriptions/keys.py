"""Tenants' API keys: issued once, stored hashed, scoped, revocable.

A key reads `vk_<id>_<secret>`: the id (12 hex) finds the stored key, the secret (32 random bytes, url-safe
base64) is never stored, only its SHA-256 (a random 256-bit secret needs no slow hash: there is nothing to
guess from the digest). A tenant is the name its keys were issued to; every subscription made with a key
belongs to the key's tenant, and no other tenant can see it.

    issue(tenant, scopes, at)  → (the key, shown once; the ApiKey to store)
    verify(stored, key)        → True when `key` is this stored key's, compared in constant time

Scopes: `read` (GET), `write` (everything else; a write key may also read).

Stores (SQLite for the embedded runtime, in the subscriptions' file; Redis for the distributed one,
subscriptions/redis_keys.py) implement KeyStore.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from subscriptions.sqlite import _path as sqlite_path

SCOPES = ("read", "write")
PREFIX = "vk_"
_KEY = re.compile(r"^vk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant: str
    scopes: frozenset[str]
    digest: str  # SHA-256 of the secret part, hex
    created_at: str
    revoked: bool = False

    def allows(self, scope: str) -> bool:
        return not self.revoked and (scope in self.scopes or (scope == "read" and "write" in self.scopes))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "tenant": self.tenant, "scopes": sorted(self.scopes), "digest": self.digest,
                "created_at": self.created_at, "revoked": self.revoked}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ApiKey:
        return cls(d["id"], d["tenant"], frozenset(d["scopes"]), d["digest"], d["created_at"], bool(d["revoked"]))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown or not wanted:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}, got {', '.join(sorted(wanted)) or 'none'}")
    return wanted


def check_tenant(tenant: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", tenant):
        raise ValueError(f"a tenant name is 1-63 of a-z 0-9 _ . - (starting with a letter or digit), got {tenant!r}")
    return tenant


def issue(tenant: str, scopes: Iterable[str], *, at: datetime) -> tuple[str, ApiKey]:
    """A new key for `tenant`: the full key (give it out once) and what to store."""
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    stored = ApiKey(key_id, check_tenant(tenant), check_scopes(scopes), _digest(secret), at.isoformat())
    return f"{PREFIX}{key_id}_{secret}", stored


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, None for anything else."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def verify(stored: ApiKey, key: str) -> bool:
    match = _KEY.match(key)
    return match is not None and hmac.compare_digest(_digest(match.group(2)), stored.digest)


class KeyStore(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def all(self) -> list[ApiKey]: ...

    async def revoke(self, key_id: str) -> bool:
        """True when a live key was revoked."""
        ...

    async def aclose(self) -> None: ...


class SqliteKeyStore:
    """KeyStore in a SQLite file (the embedded runtime's, next to its subscriptions)."""

    def __init__(self, url: str) -> None:
        self._conn = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute("CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
                           "scopes TEXT NOT NULL, digest TEXT NOT NULL, created_at TEXT NOT NULL, "
                           "revoked INTEGER NOT NULL DEFAULT 0)")

    async def add(self, key: ApiKey) -> None:
        self._conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?)",
                           (key.id, key.tenant, ",".join(sorted(key.scopes)), key.digest, key.created_at,
                            int(key.revoked)))

    async def get(self, key_id: str) -> ApiKey | None:
        row = self._conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else _row(row)

    async def all(self) -> list[ApiKey]:
        return [_row(row) for row in self._conn.execute("SELECT * FROM api_keys ORDER BY tenant, created_at")]

    async def revoke(self, key_id: str) -> bool:
        cursor = self._conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ? AND revoked = 0", (key_id,))
        return cursor.rowcount > 0

    async def aclose(self) -> None:
        self._conn.close()


def _row(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, scopes, digest, created_at, revoked = row
    return ApiKey(key_id, tenant, frozenset(scopes.split(",")), digest, created_at, bool(revoked))
