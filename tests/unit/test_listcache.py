"""SharedListCache: one list call per scope serves every reader that accepts its age."""

from __future__ import annotations

import asyncio

from syncjob_operator.providers.listcache import SharedListCache


class Lister:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(0.01)  # concurrent readers arrive while it is in flight
        return self.calls


async def test_concurrent_readers_of_a_scope_share_one_call() -> None:
    cache: SharedListCache[str, int] = SharedListCache()
    lister = Lister()
    results = await asyncio.gather(*(cache.get("ws", lister, max_age=30) for _ in range(20)))
    assert results == [1] * 20
    assert lister.calls == 1


async def test_a_reader_asking_for_a_younger_list_gets_a_new_one() -> None:
    cache: SharedListCache[str, int] = SharedListCache()
    lister = Lister()
    assert await cache.get("ws", lister, max_age=30) == 1
    await asyncio.sleep(0.05)
    assert await cache.get("ws", lister, max_age=30) == 1  # old enough for the drift pass
    assert await cache.get("ws", lister, max_age=0.01) == 2  # too old to follow a settling job
    assert await cache.get("other", lister, max_age=30) == 3  # scopes do not share


async def test_a_list_nobody_would_accept_any_more_is_dropped() -> None:
    cache: SharedListCache[str, int] = SharedListCache()
    lister = Lister()
    await cache.get("ws", lister, max_age=0.05)  # the longest age anyone has asked for
    await asyncio.sleep(0.1)
    # Dropped once older than any reader asked for: even a lenient reader lists again.
    assert await cache.get("ws", lister, max_age=30) == 2


async def test_invalidate_forces_the_next_read() -> None:
    cache: SharedListCache[str, int] = SharedListCache()
    lister = Lister()
    await cache.get("ws", lister, max_age=30)
    cache.invalidate("ws")
    assert await cache.get("ws", lister, max_age=30) == 2
