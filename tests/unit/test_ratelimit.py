"""RateBudget: requests of one account wait for the budget its responses state."""

from __future__ import annotations

import asyncio

from syncjob_operator.providers.ratelimit import RateBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _headers(remaining: int, reset: float) -> dict[str, str]:
    return {
        "ratelimit-limit": "10",
        "ratelimit-remaining": str(remaining),
        "ratelimit-reset": str(reset),
    }


async def _taken(budget: RateBudget) -> bool:
    """Whether a slot is granted within 50 ms (the slot is released at once)."""
    try:
        async with asyncio.timeout(0.05), budget.slot():
            return True
    except TimeoutError:
        return False


async def test_an_unknown_budget_is_probed_by_one_request_at_a_time() -> None:
    budget = RateBudget(Clock())
    async with budget.slot() as observe:
        assert not await _taken(budget)  # the probe is in flight: the budget is unknown
        observe(200, _headers(remaining=5, reset=30))
    assert await _taken(budget)


async def test_a_spent_window_holds_everyone_until_its_reset() -> None:
    clock = Clock()
    budget = RateBudget(clock)
    async with budget.slot() as observe:
        observe(200, _headers(remaining=1, reset=30))
    async with budget.slot() as observe:  # the last one the window allows
        assert not await _taken(budget)  # remaining 1, one in flight: wait
        observe(200, _headers(remaining=0, reset=29))
    assert not await _taken(budget)
    clock.now += 29.5
    assert await _taken(budget)  # a new window: probed again


async def test_one_429_makes_the_others_wait() -> None:
    clock = Clock()
    budget = RateBudget(clock)
    async with budget.slot() as observe:
        observe(200, _headers(remaining=50, reset=60))
    async with budget.slot() as observe:
        observe(429, {"ratelimit-remaining": "0", "ratelimit-reset": "12"})
    assert not await _taken(budget)
    clock.now += 12.1
    assert await _taken(budget)


async def test_responses_out_of_order_keep_the_lowest_count() -> None:
    budget = RateBudget(Clock())
    async with budget.slot() as first:
        first(200, _headers(remaining=1, reset=30))
    async with budget.slot() as late:  # the answer to an earlier request: 4 were left then
        late(200, _headers(remaining=4, reset=30))
    async with budget.slot():  # the one request the window still allows
        assert not await _taken(budget)


async def test_a_provider_that_states_no_budget_is_never_waited_for() -> None:
    budget = RateBudget(Clock())
    async with budget.slot() as observe:
        observe(200, {})
        assert await _taken(budget)  # concurrent requests go at once
