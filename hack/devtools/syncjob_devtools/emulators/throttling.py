"""Request rates per account and operation, as AWS enforces them: a token bucket per (account,
operation) that refills at the operation's rate up to its burst; a call finding it empty gets
``ThrottlingException`` (the model's HTTP 429)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field


class RequestRate(BaseModel):
    """Sustained requests per second, and how many may come at once after a quiet spell."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_second: float = Field(gt=0)
    burst: int = Field(ge=1)


# AWS's General Reference lists IoT TwinMaker's API throttling limits per account and Region;
# docs/emulators.md says which figures these follow and which are chosen here.
_WRITE = RequestRate(per_second=10, burst=10)
_READ = RequestRate(per_second=50, burst=50)
DEFAULT_REQUEST_RATES: Mapping[str, RequestRate] = {
    "CreateSyncJob": _WRITE,
    "DeleteSyncJob": _WRITE,
    "TagResource": _WRITE,
    "UntagResource": _WRITE,
    "CreateWorkspace": _WRITE,
    "UpdateWorkspace": _WRITE,
    "DeleteWorkspace": _WRITE,
    "GetSyncJob": _READ,
    "ListSyncJobs": _READ,
    "ListSyncResources": _READ,
    "ListTagsForResource": _READ,
    "GetWorkspace": _READ,
    "ListWorkspaces": _READ,
}


class TokenBuckets:
    """One bucket per (account, operation), created full on first use; operations without a
    rate are never throttled."""

    def __init__(self, rates: Mapping[str, RequestRate]) -> None:
        self._rates = rates
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # tokens, refilled at

    def take(self, account: str, operation: str, now: float) -> bool:
        """Spend a token of this account's bucket for ``operation``; False when there is none."""
        rate = self._rates.get(operation)
        if rate is None:
            return True
        key = (account, operation)
        tokens, at = self._buckets.get(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - at) * rate.per_second)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        return allowed

    def clear(self) -> None:
        self._buckets.clear()
