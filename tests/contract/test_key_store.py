"""KeyStore contract: SQLite (embedded) and Redis (distributed) keep tenants' keys the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from subscriptions.keys import KeyStore, SqliteKeyStore, issue, key_id_of, verify
from subscriptions.redis_keys import RedisKeyStore
from tests.contract.conftest import drop_namespace, unique

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    if request.param == "sqlite":
        store: KeyStore = SqliteKeyStore(f"sqlite:///{tmp_path / 'vigie.db'}")
        yield store
        await store.aclose()
        return
    url, namespace = request.getfixturevalue("redis_url"), unique("keys")
    store = RedisKeyStore(url, namespace=namespace)
    yield store
    await store.aclose()
    await drop_namespace(url, namespace)


async def test_add_get_verify_revoke(keys: KeyStore) -> None:
    key, stored = issue("booking", ["read", "write"], at=AT)
    await keys.add(stored)
    found = await keys.get(stored.id)
    assert found == stored
    assert (key_id_of(key), verify(stored, key), verify(stored, key[:-1] + "x")) == (stored.id, True, False)
    assert (found.allows("read"), found.allows("write")) == (True, True)
    assert await keys.revoke(stored.id)
    assert not await keys.revoke(stored.id)
    revoked = await keys.get(stored.id)
    assert revoked is not None
    assert (revoked.revoked, revoked.allows("read")) == (True, False)
    assert await keys.get("000000000000") is None


async def test_all_by_tenant(keys: KeyStore) -> None:
    issued = [issue(tenant, ["read"], at=AT)[1] for tenant in ("zeta", "alpha", "alpha")]
    for stored in issued:
        await keys.add(stored)
    assert [k.tenant for k in await keys.all()] == ["alpha", "alpha", "zeta"]


@pytest.mark.parametrize(("tenant", "scopes"), [("", ["read"]), ("Booking", ["read"]), ("ok", []),
                                                ("ok", ["admin"])])
def test_bad_tenants_and_scopes(tenant: str, scopes: list[str]) -> None:
    with pytest.raises(ValueError, match=r"tenant name|scopes must be"):
        issue(tenant, scopes, at=AT)
