"""The one small interface every remote API sits behind, and the types it speaks.

Each method is idempotent. Errors are classified once, here at the edge, into ProviderError
with `retryable` set: the reconciler never looks at HTTP codes or botocore exceptions. The
operator's own Kubernetes calls fail as `kube.KubeError`; both are a `CallError`.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from syncjob_operator.model import ProviderName, SyncJob

# How long a provider call waits for an answer, both providers alike. A write whose answer
# takes longer may still have taken effect remotely: the reconciler finds it again.
READ_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ResourceError:
    """One resource the remote job could not sync."""

    resource_type: str
    external_id: str
    code: str
    message: str


@dataclass(frozen=True)
class SyncProgress:
    """How far the remote job got with its resources, from a bounded read: `counts` by state
    over the resources read, whether that was all of them, and the first few errors."""

    counts: tuple[tuple[str, int], ...]  # (state, count), sorted by state
    complete: bool
    errors: tuple[ResourceError, ...] = ()

    def count(self, state: str) -> int:
        return dict(self.counts).get(state, 0)


@dataclass(frozen=True)
class Run:
    """One run of the remote job (Truto: a sync job run)."""

    run_id: str
    status: str  # created, running, completed, failed, stopped
    created_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class Observation:
    """What the provider says about the remote job right now."""

    exists: bool
    remote_id: str | None = None
    state: str | None = None
    # False: differs from the spec; None: this read did not cover everything the spec sets, so
    # nothing may be concluded (observations fail closed).
    up_to_date: bool | None = True
    drift: tuple[str, ...] = ()  # what differs from the spec, named for Events (no values)
    ready: bool = False
    settled: bool = True  # False while the remote moves on its own (CREATING, DELETING, ...)
    failed: bool = False  # the remote job itself reports an error
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None
    schedule_id: str | None = None  # the remote schedule bound to the job, where there is one
    # The SyncJob the remote job names as its owner ("namespace/name"), where the provider
    # stores such a marker (TwinMaker tags); None when it names none.
    owner: str | None = None
    # An immutable field that differs from the spec (e.g. "syncRole ..."): adopting such a job
    # would manage something other than what the SyncJob declares.
    conflict: str | None = None
    # What the provider read to decide up_to_date, so its update() diffs against it instead
    # of reading the same things again: a typed value of the provider's own (TwinMakerBasis,
    # TrutoBasis), None when nothing beyond the fields above was read.
    basis: object = None
    progress: SyncProgress | None = None  # where the provider reports per-resource progress
    last_run: Run | None = None  # the latest run, where the provider has runs and read it


ABSENT = Observation(exists=False)


def with_state_of(known: Observation, listed: Observation) -> Observation:
    """`known` (a full observation) moved on to the state a later state-only read found."""
    return dataclasses.replace(
        known,
        exists=listed.exists,
        state=listed.state,
        ready=listed.ready,
        settled=listed.settled,
        failed=listed.failed,
        error_code=listed.error_code,
        error_message=listed.error_message,
        updated_at=listed.updated_at or known.updated_at,
    )


class CallError(Exception):
    """A call a reconcile made failed, classified where it was made. `retryable` errors back off
    and retry; others are terminal."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        operation: str = "",
        answered: bool = True,
        throttled: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.operation = operation
        # False when the request may still be processed remotely (timeout, lost connection).
        self.answered = answered
        # The provider refused the call for its request rate (a 429, or AWS's throttling codes).
        self.throttled = throttled


class ProviderError(CallError):
    """A provider's remote call failed."""


# Raised by create() where jobs are named and the name is already taken: nothing was created,
# and the job holding the name is for the caller to read and judge.
NAME_TAKEN = "NameTaken"


@runtime_checkable
class RunsProvider(Protocol):
    """A provider whose jobs run on demand (Truto): what spec.truto.run needs."""

    async def start_run(self, job: SyncJob) -> Run:
        """Starts one run of the job's remote job, as its run request asks."""
        ...

    async def runs_since(self, job: SyncJob, since: datetime.datetime) -> list[Run]:
        """Runs of the remote job that the run request could have started since `since`, oldest
        first: how a start interrupted by a crash is found again."""
        ...


class Provider(Protocol):
    """One remote API. Every method is idempotent; errors are ProviderError."""

    name: ProviderName
    marks_owner: bool  # the remote job stores which SyncJob owns it (Observation.owner)
    found_by_spec: bool  # the spec names the remote job (else only its recorded id finds it)

    async def observe(
        self,
        job: SyncJob,
        *,
        max_age: float | None = None,
        content: bool = True,
        progress: bool = False,
    ) -> Observation:
        """Reads the remote job (by its recorded id, or by name where the provider names jobs).
        With `max_age`, the lists of its scope read at most that many seconds ago may serve it:
        one list call per scope then serves every object in it (drift detection, settling).
        Without, the read is fresh and of this job alone. `content=False` asks for existence
        and state only (following a job that settles): what only the comparison with the spec
        needs may go unread, and up_to_date is then None. `progress` also reads how far the
        job got with its resources (Observation.progress) where the provider reports it: a read
        per job, so only the drift pass asks, once per period."""
        ...

    async def create(self, job: SyncJob) -> Observation:
        """Creates the remote job, marked as owned by `job` where the provider can. Where jobs
        are named and the name is taken, raises ProviderError(NAME_TAKEN)."""
        ...

    async def update(self, job: SyncJob, observed: Observation) -> Observation: ...

    async def delete(self, job: SyncJob, observed: Observation) -> None: ...

    async def release(self, job: SyncJob, observed: Observation) -> None:
        """Removes the ownership marker `job` left on the remote job (deletionPolicy Orphan)."""
        ...

    async def scope(self, job: SyncJob) -> Hashable:
        """Jobs in one scope are visible to each other's lists (same account or token and
        integration): creates and claims are serialized per scope."""
        ...

    def fingerprint(self, job: SyncJob) -> str:
        """A hash of the content a create sends, recorded in the create-pending marker."""
        ...

    async def find_created(self, job: SyncJob) -> list[Observation]:
        """Remote jobs that `job`'s interrupted create (its pending marker) may have made, oldest
        first: same content, created since the marker. Empty where jobs are found by name."""
        ...

    async def connect(self) -> None:
        """Prepares the provider's connections in the running event loop; the runner calls it
        once, before any reconcile."""
        ...

    async def aclose(self) -> None:
        """Releases the provider's connections; the runner calls it once, at shutdown."""
        ...


class SecretReader(Protocol):
    async def read(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        """Returns the Secret's decoded data and its resourceVersion; raises a CallError
        (terminal, SecretNotFound) when it does not exist."""
        ...


async def secret_value(secrets: SecretReader, namespace: str, name: str, key: str) -> str:
    data, _ = await secrets.read(namespace, name)
    if key not in data:
        raise ProviderError(
            "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}", retryable=False
        )
    return data[key]
