"""The one small interface every remote API sits behind, and the types it speaks.

Each method is idempotent. Errors are classified once, here at the edge, into ProviderError
with `retryable` set: the reconciler never looks at HTTP codes or botocore exceptions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from syncjob_operator.model import PendingCreate, ProviderName, SyncJob


@dataclass(frozen=True)
class Observation:
    """What the provider says about the remote job right now."""

    exists: bool
    remote_id: str | None = None
    state: str | None = None
    up_to_date: bool = True
    ready: bool = False
    settled: bool = True  # False while the remote moves on its own (CREATING, DELETING, ...)
    failed: bool = False  # the remote job itself reports an error
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None
    schedule_id: str | None = None  # the remote schedule bound to the job, where there is one
    # What the provider read to decide up_to_date, so its update() diffs against it instead
    # of reading the same things again.
    basis: Mapping[str, Any] = dataclasses.field(default_factory=dict)


ABSENT = Observation(exists=False)


class ProviderError(Exception):
    """A remote call failed. `retryable` errors back off and retry; others are terminal."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        operation: str = "",
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.operation = operation


class Provider(Protocol):
    name: ProviderName

    async def observe(self, job: SyncJob, *, shared_list: bool = False) -> Observation:
        """Reads the remote job. `shared_list` allows one list call per scope to serve many
        objects (periodic resync); otherwise the read is fresh."""
        ...

    async def create(self, job: SyncJob) -> Observation: ...

    async def update(self, job: SyncJob, observed: Observation) -> Observation: ...

    async def delete(self, job: SyncJob, observed: Observation) -> None: ...


def created_since(pending: PendingCreate | None, created_at: datetime.datetime | None) -> bool:
    """Whether a remote job could be the one an interrupted create made (a little clock skew
    between us and the provider is allowed)."""
    if pending is None or created_at is None:
        return False
    return created_at >= pending.started_at - datetime.timedelta(seconds=30)


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


class SecretReader(Protocol):
    async def read(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """Returns the Secret's decoded data and its resourceVersion; raises ProviderError
        (terminal, SecretNotFound) when it does not exist."""
        ...


async def secret_value(secrets: SecretReader, namespace: str, name: str, key: str) -> str:
    data, _ = await secrets.read(namespace, name)
    if key not in data:
        raise ProviderError(
            "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}", retryable=False
        )
    return data[key]
