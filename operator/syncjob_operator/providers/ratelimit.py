"""One request budget per provider account, shared by every SyncJob that uses it.

Truto states its budget on every response (the IETF RateLimit fields it normalises:
ratelimit-limit, ratelimit-remaining, ratelimit-reset in seconds). Each SyncJob discovering the
limit with a 429 of its own is what ACK and most operators do; here every request of one token
takes a slot first, so once a response says the window is spent (or one 429 says so), the
others wait for the reset instead of being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping


class RateBudget:
    """The budget of one account: how many requests the current window has left and when it
    resets, from the latest responses; requests in flight count against it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._remaining: int | None = None  # unknown: one request at a time finds out
        self._reset_at = 0.0
        self._metered = True  # False once a response carries no budget: then never wait
        self._in_flight = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Callable[[int, Mapping[str, str]], None]]:
        """Waits until the budget allows one more request; yields the function that takes the
        response's status and headers."""
        async with self._changed:
            while (wait := self._wait()) is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=wait)
            self._in_flight += 1
        try:
            yield self._observe
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _wait(self) -> float | None:
        """None when a request may go now; else how long at most until that may change."""
        if not self._metered:
            return None
        now = self._clock()
        if self._reset_at and now >= self._reset_at:
            self._remaining, self._reset_at = None, 0.0  # a new window: its budget is unknown
        if self._remaining is None:
            # A probe: the first response states the budget for the rest.
            return None if self._in_flight == 0 else 1.0
        if self._remaining - self._in_flight > 0:
            return None
        # Spent: until the reset, or sooner if a response in flight changes the picture.
        return max(self._reset_at - now, 0.01) if self._reset_at else 1.0

    def _observe(self, status: int, headers: Mapping[str, str]) -> None:
        remaining = _number(headers.get("ratelimit-remaining"))
        reset = _number(headers.get("ratelimit-reset") or headers.get("retry-after"))
        if status == 429:
            remaining = 0
        elif remaining is None:
            self._metered = False  # this provider states no budget: nothing to wait for
            return
        if reset is not None:
            self._reset_at = self._clock() + reset
        assert remaining is not None
        # Responses to concurrent requests arrive in any order: the lowest count is the latest.
        known = self._remaining
        self._remaining = int(remaining) if known is None else min(known, int(remaining))


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
