"""Backends for the contract suites: every implementation of a port runs the same tests.

Real services come from tests/services.py (skipped locally when absent, failed in CI).
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis


def unique(prefix: str) -> str:
    """A fresh name, so tests sharing a Redis server or a Kafka cluster never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def drop_namespace(url: str, namespace: str) -> None:
    """Delete every key a store created under `namespace` (its keys all start with `{namespace:`)."""
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{{{namespace}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
