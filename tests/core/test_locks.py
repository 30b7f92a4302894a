"""KeyedLock.acquire: a hold released from synchronous code, once, leaving no key behind."""

from __future__ import annotations

import asyncio

from server.core.locks import KeyedLock


async def test_acquire_and_release_from_sync_code() -> None:
    locks = KeyedLock()
    release = await locks.acquire("chain")
    waiter = asyncio.create_task(locks.acquire("chain"))
    await asyncio.sleep(0)
    assert not waiter.done() and locks.waiting("chain") == 2
    release()
    release()  # a second call is harmless and does not free someone else's hold
    second = await asyncio.wait_for(waiter, timeout=1)
    assert locks.waiting("chain") == 1
    second()
    assert len(locks) == 0
