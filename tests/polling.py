"""Polling a remote state (Kafka offsets, Redis marks, processes) that has no event to wait on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], Awaitable[bool]], what: str, deadline_s: float = 60.0,
                logs: Callable[[], str] = str, every_s: float = 0.1) -> None:
    """Ask `condition` every `every_s` until it is true; AssertionError saying `what` (and `logs()`) at the
    deadline."""
    try:
        async with asyncio.timeout(deadline_s):
            while not await condition():  # noqa: ASYNC110 - bounded by the timeout, polls a remote state
                await asyncio.sleep(every_s)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {deadline_s}s\n{logs()}".rstrip()) from None
