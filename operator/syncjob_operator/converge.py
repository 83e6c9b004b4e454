"""The remote side of one reconcile, provider-agnostic: observe, decide, act. No kopf here.

reconcile.py calls `converge` (or `remove` once the SyncJob is deleted) and `follow`.

The flow follows Crossplane's managed reconciler, with ownership made explicit: observe the
remote job; if it exists, act on it only if this SyncJob owns it (ownership.verdict); if it is
absent, create it under a crash guard. The guard is a create-pending marker persisted on the
object before the create; a restart that finds the marker claims the job the interrupted create
made (any unclaimed job of the same content made since the marker: identical jobs are
interchangeable) and creates again only once no earlier request can still land. Creates and
claims are serialized per scope, so two SyncJobs never claim one job. Errors come back as values.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Literal, Protocol

from syncjob_operator.model import PendingCreate, RunMark, SyncJob
from syncjob_operator.ownership import REFUSALS, Claims, verdict
from syncjob_operator.providers.base import (
    NAME_TAKEN,
    CallError,
    Observation,
    Provider,
    ProviderError,
    Run,
    RunsProvider,
    with_state_of,
)

Action = Literal[
    "none",
    "created",
    "recreated",
    "recovered",
    "adopted",
    "updated",
    "deleting",
    "deleted",
    "orphaned",
    "released",
    "observed",  # ObserveOnly: read, nothing else
    "paused",  # the pause annotation: no call at all
]

CREATE_IN_FLIGHT = "CreateInFlight"
EXTERNAL_ID_REQUIRED = "ExternalIdRequired"


class IdentityWriter(Protocol):
    """Where the crash guard and the remote identity are persisted on the SyncJob."""

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        """Must reach the API server before the create is sent (with the finalizer)."""
        ...

    async def record_identity(self, job: SyncJob, remote_id: str) -> None:
        """May ride on the reconcile's final write: until it lands, the pending marker finds
        the job again after a crash."""
        ...

    async def drop_pending_create(self, job: SyncJob) -> None:
        """The create was answered and made nothing: the marker (and the finalizer it needs)
        may go, on the final write."""
        ...

    async def mark_run(self, job: SyncJob, mark: RunMark) -> None:
        """A pending run mark: must reach the API server before the run is started."""
        ...

    async def record_run(self, job: SyncJob, mark: RunMark) -> None:
        """The started run: may ride on the final write (the pending mark covers the gap)."""
        ...


@dataclass(frozen=True)
class Context:
    """What a reconcile needs besides the job and its provider."""

    provider: Provider
    writer: IdentityWriter
    claims: Claims
    # How long a create request may still land after the process that sent it died: no second
    # create (and no "already gone" on delete) while an interrupted one may be in flight.
    in_flight_seconds: float = 30.0
    # The create marker whose create this process saw answered, by uid: nothing of it is in
    # flight. Only an object's latest marker matters (a newer one replaces it on the object).
    answered: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    observation: Observation | None  # None when no remote job of ours could be read
    action: Action = "none"
    error: CallError | None = None
    drift: tuple[str, ...] = ()  # what an update corrected
    detail: str = ""  # why, for the Event, where the action alone does not say
    run_started: Run | None = None  # the run this reconcile started for spec.truto.run

    @property
    def done(self) -> bool:
        """Nothing left to wait for: no error and the remote job has settled."""
        return self.error is None and (self.observation is None or self.observation.settled)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


async def converge(
    job: SyncJob, ctx: Context, *, max_age: float | None = None, progress: bool = False
) -> Outcome:
    """Brings the remote job in line with the spec (create, claim, adopt, update or nothing).
    With `max_age`, its scope's lists may serve the first read; with `progress`, it reads the
    job's resource progress too (see Provider.observe)."""
    if job.spec.observe_only:
        return await _observe_only(job, ctx, max_age, progress)
    provider = ctx.provider
    job = ctx.claims.recorded_identity(job)
    observed: Observation | None = None
    try:
        action: Action = "none"
        if _creates_first(job, ctx):
            async with ctx.claims.lock(await provider.scope(job)):
                observed, action = await _create_once(job, ctx)
        else:
            observed = await provider.observe(job, max_age=max_age, progress=progress)
            if max_age is not None and (not observed.exists or observed.up_to_date is None):
                # A list can be up to max_age old and need not read everything: confirm first.
                observed = await provider.observe(job, progress=progress)
            if observed.exists:
                action = await _judge(job, observed, ctx)
            elif job.remote_id is not None and job.spec.deletion_policy == "Orphan":
                return Outcome(observed)  # deleted out of band; Orphan: not ours to recreate
            else:
                async with ctx.claims.lock(await provider.scope(job)):
                    observed, action = await _create_once(job, ctx)
        job = job.with_remote_id(observed.remote_id)
        drift: tuple[str, ...] = ()
        # Also right after a create: what the create call cannot set (a Truto schedule).
        if observed.up_to_date is False and observed.settled and not observed.failed:
            drift = observed.drift
            observed = await provider.update(job, observed)
            action = "updated" if action == "none" else action
        started = None
        if observed.settled and not observed.failed:
            started = await _start_requested_run(job, ctx)
        if started is not None:
            observed = dataclasses.replace(observed, last_run=started)
        return Outcome(observed, action, drift=drift, run_started=started)
    except CallError as error:
        return Outcome(None if _refused(error) else observed, error=error)


def _creates_first(job: SyncJob, ctx: Context) -> bool:
    """A job named by its spec that nothing records (no identity, no create marker) and whose
    create this process has not sent: it is created without a read first (one call, not three),
    and a taken name is read and judged then. Once sent, the name's holder is read first, so a
    refused SyncJob does not repeat a create that fails."""
    return (
        ctx.provider.found_by_spec
        and job.remote_id is None
        and job.pending_create is None
        and job.uid not in ctx.answered
    )


async def _observe_only(
    job: SyncJob, ctx: Context, max_age: float | None, progress: bool
) -> Outcome:
    """ObserveOnly (Crossplane's Observe policy, ACK's read-only adoption): mirror the remote job
    the spec or the external-id annotation names. No create, update, tag, claim or identity
    write: another SyncJob may own the job, and reading it acts on nothing."""
    provider = ctx.provider
    if job.remote_id is None and not provider.found_by_spec:
        return Outcome(
            None,
            error=ProviderError(
                EXTERNAL_ID_REQUIRED,
                "ObserveOnly needs the id of the remote job to mirror: set the annotation"
                " syncjob.dev/external-id",
                retryable=False,
            ),
        )
    try:
        observed = await provider.observe(job, max_age=max_age, progress=progress)
        if max_age is not None and not observed.exists:
            observed = await provider.observe(job, progress=progress)  # a list may be older
    except CallError as error:
        return Outcome(None, error=error)
    return Outcome(observed, "observed", drift=observed.drift if observed.exists else ())


async def follow(job: SyncJob, ctx: Context, last: Outcome, *, max_age: float) -> Outcome:
    """The next look at a remote job settling after `last` (created and still CREATING, or
    DELETING): a state-only read its scope's list may serve, so that many settling jobs cost
    one list per scope per poll, not a read each."""
    known = last.observation
    assert known is not None, "follow needs a job to follow"
    assert known.remote_id is not None, "follow needs a job to follow"
    job = ctx.claims.recorded_identity(job).with_remote_id(known.remote_id)
    try:
        listed = await ctx.provider.observe(job, max_age=max_age, content=False)
    except CallError as error:
        return Outcome(known, last.action, error=error)
    if last.action == "deleting":
        if not listed.exists:
            return Outcome(listed, "deleted")
        moved = with_state_of(known, listed)
        return Outcome(dataclasses.replace(moved, settled=False, ready=False), "deleting")
    if not listed.exists:
        return await converge(job, ctx)  # gone while it settled: a full reconcile decides
    return Outcome(with_state_of(known, listed), last.action, drift=last.drift)


async def _start_requested_run(job: SyncJob, ctx: Context) -> Run | None:
    """Starts the run spec.truto.run asks for, exactly once per requestId: a pending mark goes
    to the API server before the start, and a restart that finds the mark claims the run that
    start made (any run of the same account and args since the mark: they are alike) and starts
    again only once no earlier request can still land. None when nothing was started."""
    request = job.spec.run_request
    mark = job.run_mark
    if request is None or not job.run_outstanding:
        return None
    provider = ctx.provider
    assert isinstance(provider, RunsProvider), f"{provider.name} has no runs"
    if mark is not None and mark.request_id == request.request_id and mark.since is not None:
        found = await provider.runs_since(job, mark.since)
        if found:
            await ctx.writer.record_run(job, RunMark(request.request_id, run_id=found[0].run_id))
            return None  # started before the crash: nothing new to report
        _raise_while_in_flight(mark.since, f"start of run {request.request_id}", ctx)
    await ctx.writer.mark_run(job, RunMark(request.request_id, since=_now()))
    run = await provider.start_run(job)
    await ctx.writer.record_run(job, RunMark(request.request_id, run_id=run.run_id))
    return run


async def _create_once(job: SyncJob, ctx: Context) -> tuple[Observation, Action]:
    """Claims what an interrupted create made, or creates; the caller holds the scope lock."""
    provider = ctx.provider
    recovered = await _claim_leftover(job, ctx)
    if recovered is not None:
        return recovered, "recovered"
    _wait_out_interrupted_create(job, ctx)
    pending = PendingCreate(started_at=_now(), content_hash=provider.fingerprint(job))
    await ctx.writer.mark_pending_create(job, pending)
    job = dataclasses.replace(job, pending_create=pending)
    try:
        observed = await provider.create(job)
    except CallError as error:
        if error.answered:
            ctx.answered[job.uid] = pending.encode()
        if error.code != NAME_TAKEN:
            raise
        await ctx.writer.drop_pending_create(job)  # unless the job holding the name is ours
        taken = await provider.observe(job)
        if not taken.exists:
            raise ProviderError(
                "CreateConflict", "the job's name was taken, then freed; retrying", retryable=True
            ) from error
        return taken, await _judge(job, taken, ctx)
    ctx.answered[job.uid] = pending.encode()
    await _record(job, observed, ctx)
    return observed, "recreated" if job.remote_id else "created"


async def _judge(job: SyncJob, observed: Observation, ctx: Context) -> Action:
    """Whether `job` may manage the existing remote job (raises the refusal if not), recording
    it as the job's own where it is not yet."""
    owned = verdict(job, observed, ctx.claims)
    if job.external_id == observed.remote_id and job.pending_create is None:
        return "none"
    await _record(job, observed, ctx)
    return "adopted" if owned == "adopt" else "recovered"


async def _claim_leftover(job: SyncJob, ctx: Context) -> Observation | None:
    """The oldest unclaimed job of the pending create's content, claimed for `job`."""
    if job.pending_create is None:
        return None
    for candidate in await ctx.provider.find_created(job):
        assert candidate.remote_id is not None
        if ctx.claims.owner_of(job.spec.provider, candidate.remote_id) is None:
            await _record(job, candidate, ctx)
            return candidate
    return None


def _wait_out_interrupted_create(job: SyncJob, ctx: Context) -> None:
    """Raises while a create sent by a process that died may still land remotely."""
    pending = job.pending_create
    if pending is None or ctx.answered.get(job.uid) == pending.encode():
        return
    _raise_while_in_flight(pending.started_at, "create", ctx)


def _raise_while_in_flight(started: datetime.datetime, what: str, ctx: Context) -> None:
    """Raises while a request sent at `started` by a process that died may still land."""
    age = (_now() - started).total_seconds()
    if age < ctx.in_flight_seconds:
        raise ProviderError(
            CREATE_IN_FLIGHT,
            f"an interrupted {what} from {started.isoformat()} may still land;"
            " checking again before sending it again",
            retryable=True,
            retry_after=ctx.in_flight_seconds - age,
        )


async def _record(job: SyncJob, observed: Observation, ctx: Context) -> None:
    assert observed.remote_id is not None
    ctx.claims.claim(job, observed.remote_id)  # before any await: the next claim must see it
    await ctx.writer.record_identity(job, observed.remote_id)


def _refused(error: CallError) -> bool:
    return error.code in REFUSALS


async def remove(job: SyncJob, ctx: Context) -> Outcome:
    """Deletes the remote job this SyncJob owns; `done` once it is really gone (already gone
    counts). A job it does not own is left alone, as is every job of an ObserveOnly SyncJob."""
    if job.spec.observe_only:
        return Outcome(None, "released", detail="ObserveOnly: the operator never deletes it")
    job = ctx.claims.recorded_identity(job)
    if job.spec.deletion_policy == "Orphan":
        return await _orphan(job, ctx)
    if job.remote_id is None and job.pending_create is None:
        # It never created nor claimed a remote job (e.g. it was refused one): none is its own.
        return Outcome(None, "released", detail="this SyncJob never created or claimed one")
    provider = ctx.provider
    observed: Observation | None = None
    try:
        observed = await provider.observe(job)
        if observed.exists:
            try:
                verdict(job, observed, ctx.claims)
            except CallError as refusal:
                return Outcome(None, "released", detail=refusal.message)  # not ours to delete
        else:
            async with ctx.claims.lock(await provider.scope(job)):
                leftover = await _claim_leftover(job, ctx)
                if leftover is None:
                    _wait_out_interrupted_create(job, ctx)
                    return Outcome(observed, "deleted")
            job = job.with_remote_id(leftover.remote_id)
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
    except CallError as error:
        return Outcome(observed, error=error)


async def _orphan(job: SyncJob, ctx: Context) -> Outcome:
    """Leaves the remote job, releasing the ownership marker where the provider keeps one so
    another SyncJob may adopt it. One attempt: a failure is reported, never blocks deletion."""
    if not ctx.provider.marks_owner or (job.remote_id is None and job.pending_create is None):
        return Outcome(None, "orphaned")  # no marker to release (a pending create may have set one)
    try:
        observed = await ctx.provider.observe(job)
        if observed.exists and observed.owner == job.owner:
            await ctx.provider.release(job, observed)
    except CallError as error:
        return Outcome(None, "orphaned", error=error)
    return Outcome(None, "orphaned")
