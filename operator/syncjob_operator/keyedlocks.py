"""A lock per key that exists only while someone holds or awaits it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable


class KeyedLocks:
    """One asyncio.Lock per key (a SyncJob, a scope, a Secret), kept while it is held or awaited:
    memory for the keys in use, not for every key ever seen (10,000 objects, 5,000 scopes)."""

    def __init__(self) -> None:
        self._held: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    def locked(self, key: Hashable) -> bool:
        entry = self._held.get(key)
        return entry is not None and entry[0].locked()

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._held.get(key) or (asyncio.Lock(), 0)
        self._held[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (lock, users - 1)
