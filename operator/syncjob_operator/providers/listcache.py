"""One list call per scope serving many objects: how a TwinMaker workspace, a region's tags or
a Truto integration is read for drift detection and while remote jobs settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedListCache(Generic[K, V]):
    """One in-flight list call per scope; its result serves every reader that accepts its age.

    The drift pass accepts lists up to half a resync period old and settling jobs up to half a
    poll interval, so each costs one list call per scope per period however many objects it
    serves. Memory grows with scopes (one list each), not with reads.
    """

    def __init__(self) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._locks: dict[K, asyncio.Lock] = {}

    async def get(self, scope: K, fetch: Callable[[], Awaitable[V]], *, max_age: float) -> V:
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:
            entry = self._entries.get(scope)
            if entry is not None and time.monotonic() - entry[0] <= max_age:
                return entry[1]
            value = await fetch()
            self._entries[scope] = (time.monotonic(), value)
            return value

    def invalidate(self, scope: K) -> None:
        self._entries.pop(scope, None)
