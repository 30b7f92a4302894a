"""One keyed lock for the whole code base.

``KeyedLock`` serialises work per key inside one process (a room, an audit chain, a
visit) and forgets a key's lock as soon as nobody holds or waits for it, so the map
never grows with the number of keys ever used. Cross-process exclusion (PostgreSQL
advisory locks) is taken *inside* it, always in this order: keyed lock, then the
database. Callers must not hold a pooled connection while they wait for a keyed lock
(take the lock first, then open the database session), so that no lock waits on
the pool while the pool waits on the lock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager

from server.core.errors import unavailable

_BUSY = "This room is busy; try again in a moment."


class KeyedLock:
    def __init__(self, name: str = "lock") -> None:
        self.name = name
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}
        self._held_since: dict[Hashable, float] = {}

    def waiting(self, key: Hashable) -> int:
        """How many holders and waiters a key has (0 when it is free)."""
        entry = self._locks.get(key)
        return entry[1] if entry else 0

    @asynccontextmanager
    async def hold(
        # The timeout bounds only the wait, and turns it into a "retry later" answer.
        self, key: Hashable, *, timeout: float | None = None, busy: str = _BUSY  # noqa: ASYNC109
    ) -> AsyncIterator[None]:
        """Hold ``key``'s lock. With ``timeout``, give up waiting with ``unavailable``
        (a "retry later" answer) instead of queueing without end."""
        release = await self.acquire(key, timeout=timeout, busy=busy)
        try:
            yield
        finally:
            release()

    async def acquire(
        self, key: Hashable, *, timeout: float | None = None, busy: str = _BUSY  # noqa: ASYNC109
    ) -> Callable[[], None]:
        """Take ``key``'s lock and return the function that gives it back. For a hold
        that ends in synchronous code, such as a database session's commit hook; the
        release function is safe to call more than once."""
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            if timeout is None or users == 0:
                # Nobody else holds or waits (the usual case): no timer for a wait
                # that will not happen.
                await lock.acquire()
            else:
                try:
                    await asyncio.wait_for(lock.acquire(), timeout)
                except TimeoutError:
                    raise unavailable(1.0, busy) from None
        except BaseException:
            self._forget(key)
            raise
        released = False
        self._held_since[key] = time.monotonic()

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._held_since.pop(key, None)
            lock.release()
            self._forget(key)

        return release

    def _forget(self, key: Hashable) -> None:
        current, count = self._locks[key]
        if count <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (current, count - 1)

    def oldest_hold(self) -> float | None:
        """Seconds the longest current holder has held its key (None when none is held)."""
        if not self._held_since:
            return None
        return time.monotonic() - min(self._held_since.values())

    def __len__(self) -> int:
        return len(self._locks)
