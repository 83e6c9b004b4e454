"""Provider-agnostic reconcile logic: observe, decide, act. No kopf here.

The flow follows Crossplane's managed reconciler: observe the remote job; if it is absent,
persist a "create pending" marker, create, and persist the new identity at once; if it
differs from the spec, update; otherwise do nothing. Errors come back classified as a value.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Literal, Protocol

from syncjob_operator.model import PendingCreate, SyncJob
from syncjob_operator.providers.base import Observation, Provider, ProviderError

Action = Literal[
    "none", "created", "recreated", "adopted", "updated", "deleting", "deleted", "orphaned"
]


class StatusWriter(Protocol):
    """Writes that must reach the API server before the next remote call, not after it."""

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None: ...

    async def record_identity(self, job: SyncJob, observed: Observation) -> None: ...


@dataclass(frozen=True)
class Outcome:
    observation: Observation | None  # None when the remote job could not be read
    action: Action = "none"
    error: ProviderError | None = None

    @property
    def done(self) -> bool:
        """Nothing left to wait for: no error and the remote job has settled."""
        return self.error is None and (self.observation is None or self.observation.settled)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


async def apply(
    job: SyncJob, provider: Provider, writer: StatusWriter, *, shared_list: bool = False
) -> Outcome:
    """Brings the remote job in line with the spec (create, adopt, update or nothing)."""
    observed: Observation | None = None
    try:
        observed = await provider.observe(job, shared_list=shared_list)
        if not observed.exists and shared_list:
            # A list can be up to its TTL old: confirm before acting on an absence.
            observed = await provider.observe(job)
        action: Action = "none"
        if not observed.exists:
            if job.remote_id is not None and job.spec.deletion_policy == "Orphan":
                return Outcome(observed)  # deleted out of band; Orphan means we do not own its life
            pending = PendingCreate(started_at=_now(), spec_hash=job.spec.fingerprint())
            await writer.mark_pending_create(job, pending)
            observed = await provider.create(dataclasses.replace(job, pending_create=pending))
            await writer.record_identity(job, observed)
            action = "recreated" if job.remote_id else "created"
            job = job.with_remote_id(observed.remote_id)
        elif observed.remote_id != job.remote_id:
            await writer.record_identity(job, observed)
            action = "adopted"
        # Also right after a create: what the create call cannot set (a Truto schedule).
        if not observed.up_to_date and observed.settled and not observed.failed:
            observed = await provider.update(job, observed)
            action = "updated" if action == "none" else action
        return Outcome(observed, action)
    except ProviderError as error:
        return Outcome(observed, error=error)


async def remove(job: SyncJob, provider: Provider) -> Outcome:
    """Deletes the remote job; `done` once it is really gone (already gone counts)."""
    if job.spec.deletion_policy == "Orphan":
        return Outcome(None, "orphaned")
    observed: Observation | None = None
    try:
        observed = await provider.observe(job)
        if not observed.exists:
            return Outcome(observed, "deleted")
        if observed.state != "DELETING":
            await provider.delete(job, observed)
            observed = await provider.observe(job)
        if not observed.exists:
            return Outcome(observed, "deleted")
        # Still there (TwinMaker passes through DELETING): not settled until it is gone.
        return Outcome(dataclasses.replace(observed, settled=False, ready=False), "deleting")
    except ProviderError as error:
        return Outcome(observed, error=error)
