"""One list call per scope serving many objects: how a TwinMaker workspace, a region's tags or
a Truto integration is read for drift detection and while remote jobs settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from syncjob_operator.keyedlocks import KeyedLocks

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedListCache(Generic[K, V]):
    """One in-flight list call per scope; its result serves every reader that accepts its age.

    The drift pass accepts lists up to half a resync period old and settling jobs up to half a
    poll interval, so each costs one list call per scope per period however many objects it
    serves. A list is dropped once no reader would accept it any more (the longest age asked
    for): between drift passes, memory holds no lists.
    """

    def __init__(self) -> None:
        self._entries: dict[K, tuple[float, V]] = {}
        self._locks = KeyedLocks()
        self._longest = 0.0

    async def get(self, scope: K, fetch: Callable[[], Awaitable[V]], *, max_age: float) -> V:
        self._longest = max(self._longest, max_age)
        async with self._locks.hold(scope):
            entry = self._entries.get(scope)
            if entry is not None and time.monotonic() - entry[0] <= max_age:
                return entry[1]
            value = await fetch()
            stamp = time.monotonic()
            self._entries[scope] = (stamp, value)
            asyncio.get_running_loop().call_later(self._longest, self._expire, scope, stamp)
            return value

    def _expire(self, scope: K, stamp: float) -> None:
        entry = self._entries.get(scope)
        if entry is not None and entry[0] == stamp:
            del self._entries[scope]

    def invalidate(self, scope: K) -> None:
        self._entries.pop(scope, None)
