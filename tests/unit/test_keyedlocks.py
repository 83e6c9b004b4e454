"""KeyedLocks: one lock per key while in use, none kept afterwards."""

from __future__ import annotations

import asyncio

from syncjob_operator.keyedlocks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_the_lock_is_gone_once_free() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(name: str, key: str = "u1") -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            await asyncio.sleep(0.01)
            order.append(f"{name} out")

    first = asyncio.create_task(hold("a"))
    await asyncio.sleep(0)
    assert locks.locked("u1")
    assert not locks.locked("u2")
    await asyncio.gather(first, hold("b"), hold("c"), hold("other", "u2"))
    assert [step for step in order if not step.startswith("other")] == [
        "a in",
        "a out",
        "b in",
        "b out",
        "c in",
        "c out",
    ]
    assert order.index("other in") < order.index("a out")  # another key does not wait
    assert not locks.locked("u1")
    assert len(locks) == 0  # nothing kept for keys nobody holds


async def test_a_holder_that_fails_releases_the_key() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("u1"):
            raise RuntimeError("a reconcile fails")
    except RuntimeError:
        pass
    assert len(locks) == 0
    async with locks.hold("u1"):
        assert locks.locked("u1")
