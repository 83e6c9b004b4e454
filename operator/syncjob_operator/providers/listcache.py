"""One list call per scope serving many objects: the periodic resync's read of a TwinMaker
workspace or a Truto integration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedListCache(Generic[K, V]):
    """One in-flight list call per scope, its result reused for `ttl` seconds.

    Periodic resyncs of many SyncJobs in one TwinMaker workspace or Truto integration then
    cost one list call per scope instead of one get per object.
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[K, tuple[float, V]] = {}
        self._locks: dict[K, asyncio.Lock] = {}

    async def get(self, scope: K, fetch: Callable[[], Awaitable[V]]) -> V:
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            entry = self._entries.get(scope)
            if entry is not None and time.monotonic() - entry[0] < self._ttl:
                return entry[1]
            value = await fetch()
            self._entries[scope] = (time.monotonic(), value)
            return value

    def invalidate(self, scope: K) -> None:
        self._entries.pop(scope, None)
