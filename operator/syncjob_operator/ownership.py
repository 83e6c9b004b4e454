"""Who owns which remote job. No kopf here.

A remote job belongs to exactly one SyncJob. Where the provider stores a marker (TwinMaker
tags) the remote job names its owner; where it cannot (Truto), ownership is the claim a SyncJob
records on itself (the external-id annotation, mirrored in status). `Claims` is the view of
every SyncJob's claim the operator holds in memory (`index.ObjectIndex`, filled before kopf
starts and kept current by kopf's events) plus the claims this process made since, which the
watch has not echoed yet.
`verdict` decides, as a pure function, whether a SyncJob may act on an observed remote job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from syncjob_operator.keyedlocks import KeyedLocks
from syncjob_operator.model import (
    ADOPTION_POLICY_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    ProviderName,
    SyncJob,
    owner_value,
)
from syncjob_operator.providers.base import Observation, ProviderError

# Error codes of the ownership refusals: the SyncJob is not Ready and makes no remote write.
OWNED_BY_ANOTHER = "OwnedByAnother"
NOT_OWNED = "RemoteJobNotOwned"
ADOPTION_CONFLICT = "AdoptionConflict"
REFUSALS = frozenset({OWNED_BY_ANOTHER, NOT_OWNED, ADOPTION_CONFLICT})


@dataclass(frozen=True, slots=True)
class Claimant:
    """A SyncJob that records a remote id as its own."""

    namespace: str
    name: str
    uid: str
    created_at: str
    recorded: bool  # status agrees with the annotation: the claim was made by the operator

    @property
    def owner(self) -> str:
        return owner_value(self.namespace, self.name)

    def precedence(self) -> tuple[bool, str, str, str]:
        """Two SyncJobs claiming one remote id (a copied manifest, a restored backup beside the
        original): the recorded claim wins, then the older object."""
        return (not self.recorded, self.created_at, self.namespace, self.name)


IndexKey = tuple[str, ...]


def job_entries(job: SyncJob) -> dict[IndexKey, str | Claimant]:
    """Its claim on a remote id, its owner name (to tell live owners from stale ones), and the
    Secrets it references."""
    entries: dict[IndexKey, str | Claimant] = {("owner", job.owner): job.uid}
    if job.remote_id and not job.spec.observe_only:  # observing a job claims nothing
        entries[("claim", job.spec.provider, job.remote_id)] = Claimant(
            job.namespace,
            job.name,
            job.uid,
            job.created_at,
            recorded=job.status_id == job.remote_id,
        )
    for secret in job.spec.secret_names():
        entries[("secret", job.namespace, secret)] = job.uid
    return entries


IndexLookup = Callable[[IndexKey], Iterable[Any]]


class Claims:
    """The operator's view of every SyncJob's claim, and the per-scope create locks."""

    def __init__(self) -> None:
        self._lookup: IndexLookup = lambda key: ()
        self._local: dict[tuple[str, str], Claimant] = {}
        # By uid: the (provider, remote id) of its claim in _local, and the id that claim
        # replaced. Every lookup by object is O(1): a burst claims thousands.
        self._claimed: dict[str, tuple[str, str]] = {}
        self._replaced: dict[str, str] = {}
        self._locks = KeyedLocks()

    def attach(self, lookup: IndexLookup) -> None:
        """Reads the index through `lookup` from now on (kopf hands it to each handler)."""
        self._lookup = lookup

    def claimants(self, provider: ProviderName, remote_id: str) -> list[Claimant]:
        indexed = self._lookup(("claim", provider, remote_id))
        found: dict[str, Claimant] = {claimant.uid: claimant for claimant in indexed}
        local = self._local.get((provider, remote_id))
        if local is not None:
            found.setdefault(local.uid, local)
        return sorted(found.values(), key=Claimant.precedence)

    def owner_of(self, provider: ProviderName, remote_id: str) -> Claimant | None:
        claimants = self.claimants(provider, remote_id)
        return claimants[0] if claimants else None

    def other_owner(self, job: SyncJob, remote_id: str) -> Claimant | None:
        """The SyncJob other than `job` that owns `remote_id`, if any."""
        owner = self.owner_of(job.spec.provider, remote_id)
        return owner if owner is not None and owner.uid != job.uid else None

    def claim(self, job: SyncJob, remote_id: str) -> None:
        """Records at once that `job` now owns `remote_id`: the next claim in this scope must
        see it, whether or not the watch has delivered the annotation yet."""
        self.forget(job)
        claimant = Claimant(job.namespace, job.name, job.uid, job.created_at, recorded=True)
        self._local[(job.spec.provider, remote_id)] = claimant
        self._claimed[job.uid] = (job.spec.provider, remote_id)
        if job.remote_id is not None:  # most claims replace none: nothing to keep then
            self._replaced[job.uid] = job.remote_id

    def recorded_identity(self, job: SyncJob) -> SyncJob:
        """`job` with the remote id this process last recorded for it, when its body is older
        than that write (it shows no id, or the id the write replaced): a handler can run on
        such a body, and must then neither create a second job nor miss the one it owns. A
        body showing any other id is newer (a user's edit) and wins."""
        claimed = self._claimed.get(job.uid)
        if claimed is None or claimed[0] != job.spec.provider:
            return job
        holder = self._local.get(claimed)
        if holder is None or holder.uid != job.uid:
            return job  # claimed since by another SyncJob (its owner was deleted)
        if job.remote_id not in (None, self._replaced.get(job.uid)):
            return job
        return job.with_remote_id(claimed[1])

    def forget(self, job: SyncJob) -> None:
        claimed = self._claimed.pop(job.uid, None)
        holder = self._local.get(claimed) if claimed is not None else None
        if claimed is not None and holder is not None and holder.uid == job.uid:
            del self._local[claimed]
        self._replaced.pop(job.uid, None)

    def is_live(self, owner: str) -> bool:
        """Whether a SyncJob this operator sees goes by `owner` ("namespace/name")."""
        return any(True for _ in self._lookup(("owner", owner)))

    def secret_users(self, namespace: str, name: str) -> set[str]:
        """The uids of SyncJobs referencing Secret namespace/name."""
        return set(self._lookup(("secret", namespace, name)))

    def lock(self, scope: Hashable) -> contextlib.AbstractAsyncContextManager[None]:
        return self._locks.hold(scope)


Verdict = Literal["ours", "adopt"]


def verdict(job: SyncJob, observed: Observation, claims: Claims) -> Verdict:
    """Whether `job` may manage the remote job it observed; raises the refusal otherwise.

    "ours": it created the job, or the job is recorded as its own; "adopt": the user asked to
    adopt an existing job nobody else owns. Everything else is refused: a job another live
    SyncJob owns is never taken over, and an unowned one is adopted only when asked.
    """
    remote_id = observed.remote_id
    assert remote_id is not None, "verdict needs an existing remote job"
    if observed.owner is not None:
        if observed.owner == job.owner:
            return "ours"
        if job.adopt and not claims.is_live(observed.owner):
            return _adoptable(job, observed)  # its owner was deleted without releasing it
        raise _owned_by(observed.owner, remote_id)
    other = claims.other_owner(job, remote_id)
    if other is not None:
        raise _owned_by(other.owner, remote_id)
    if remote_id == job.remote_id:
        return "ours"
    if job.adopt:
        return _adoptable(job, observed)
    raise ProviderError(
        NOT_OWNED,
        f"remote job {remote_id} already exists and no SyncJob owns it; to manage it, set the"
        f" annotation {ADOPTION_POLICY_ANNOTATION}: adopt"
        f" (or {EXTERNAL_ID_ANNOTATION}: {remote_id})",
        retryable=False,
    )


def _adoptable(job: SyncJob, observed: Observation) -> Verdict:
    if observed.conflict is not None:
        raise ProviderError(
            ADOPTION_CONFLICT,
            f"not adopting remote job {observed.remote_id}: its {observed.conflict} differs from"
            " the spec",
            retryable=False,
        )
    return "adopt"


def _owned_by(owner: str, remote_id: str) -> ProviderError:
    return ProviderError(
        OWNED_BY_ANOTHER,
        f"remote job {remote_id} is owned by SyncJob {owner}; this SyncJob will not act on it",
        retryable=False,
    )
