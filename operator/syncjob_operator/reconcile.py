"""The one reconcile: what happens to one SyncJob, whatever started it. No kopf here.

A change (create, update, resume, pause), the drift pass and a deletion all call
`Reconciler.reconcile`. It runs the gates (pause, ObserveOnly in `reconcile`, a terminal error
whose inputs did not change and whose re-check is not due), converges or removes the remote
job under the object's lock, follows it while it settles, computes the status and the
Kubernetes Events, counts the metrics and decides when to look again. It returns a `Result`;
the kopf edge (`kopf_edge/`) applies every Result the same way: the annotations, the status,
the Events, then the retry.

`Reconciler` also keeps what the operator remembers of each SyncJob (the index, the claims,
the progress-read clock) and forgets all of it in one place once the object is gone.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from syncjob_operator import converge
from syncjob_operator.converge import Outcome
from syncjob_operator.drift import Member
from syncjob_operator.index import ObjectIndex
from syncjob_operator.keyedlocks import KeyedLocks
from syncjob_operator.kube_events import KubeEvent, Trigger, kube_events
from syncjob_operator.metrics import (
    OBJECT_STATES,
    RECONCILE_SECONDS,
    RECONCILES,
    RETRIES,
    TERMINAL_ERRORS,
)
from syncjob_operator.model import (
    CREATE_PENDING_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    PAUSED_ANNOTATION,
    RUN_ANNOTATION,
    PendingCreate,
    ProviderName,
    RunMark,
    SyncJob,
    parse_time,
)
from syncjob_operator.ownership import Claims, IndexKey
from syncjob_operator.providers.base import CallError, Provider, SecretReader
from syncjob_operator.status import (
    TERMINAL,
    TerminalRecord,
    compute_status,
    condition,
    converged,
    status_patch,
)

MEMBER_KEY = ("member",)  # the index key under which every SyncJob's Member is kept
# A blocked deletion (a terminal error such as a revoked token or access denied) is someone
# waiting: a namespace, an Argo CD prune, a `kubectl delete`. kopf runs a delayed handler only
# once its delay is over, whatever events come meanwhile, a switch to deletionPolicy: Orphan
# included. So a blocked deletion is checked again this often, not on the terminal errors'
# 5-minute backoff: its way out (Orphan, a fixed Secret, credentials restored outside
# Kubernetes) is acted on within this period, at one provider call per blocked SyncJob per
# period. Crossplane, too, keeps retrying a failing delete on its controller's short backoff.
BLOCKED_DELETION_RECHECK_SECONDS = 30.0
# Enough to keep both providers and the API server busy (a 10,000-object burst reached Ready
# sooner with 64 than with no limit, and peaked 45 MiB lower: docs/benchmarks.md).
MAX_CONCURRENT_RECONCILES = 64
_LOG = logging.getLogger("syncjob_operator.objects")  # lines about one object


@dataclass(frozen=True)
class Timing:
    poll_seconds: float = 2.0  # while the remote settles (CREATING, DELETING)
    # A reconcile follows its job settling this long (one list per scope per poll, no write),
    # then asks to be retried: most jobs settle in seconds, a stuck one costs one retry (and
    # one progress write) per this period, not per poll.
    settle_seconds: float = 60.0
    drift_seconds: float = 60.0  # the drift pass: one look at every scope per period
    backoff_base_seconds: float = 1.0
    # Transient errors (5xx, throttling) rarely outlast a minute; a longer cap only delays
    # convergence after an outage (429s still wait as long as the provider asks).
    backoff_cap_seconds: float = 60.0
    # Terminal errors are re-checked on a slow backoff (credentials and policies change outside
    # Kubernetes), and at once when the spec or a referenced Secret changes. A blocked deletion
    # is re-tried every blocked_deletion_seconds.
    terminal_recheck_seconds: float = 300.0
    # Resource progress (TwinMaker ListSyncResources) is a read per job, not per scope: the
    # drift pass reads it this often per job, first reads spread over one such period.
    progress_seconds: float = 300.0
    terminal_recheck_cap_seconds: float = 3600.0
    # Longer than any create request can take (httpx and botocore time out well before).
    in_flight_seconds: float = 30.0

    @property
    def blocked_deletion_seconds(self) -> float:
        """How often a deletion blocked by a terminal error is tried again."""
        return min(self.terminal_recheck_seconds, BLOCKED_DELETION_RECHECK_SECONDS)

    @property
    def list_age(self) -> float:
        """How old a scope's list may be to serve the drift pass or a restart: one list per
        scope per period."""
        return self.drift_seconds / 2


class SecretKeeper(SecretReader, Protocol):
    hold: str  # this operator's (shard's) finalizer and label on the Secrets its SyncJobs use

    async def protect(self, namespace: str, name: str) -> None: ...

    async def release(self, namespace: str, name: str) -> None: ...


class CrashGuard(Protocol):
    """The writes that must reach the API server before a remote call they guard."""

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None: ...

    async def mark_run(self, job: SyncJob, mark: RunMark) -> None: ...


@dataclass
class Deps:
    """What the reconciler needs, built once at startup."""

    providers: Mapping[ProviderName, Provider]
    guard: CrashGuard
    secrets: SecretKeeper
    timing: Timing = field(default_factory=Timing)
    claims: Claims = field(default_factory=Claims)
    # How many SyncJobs converge against their provider at once (--max-concurrent-reconciles):
    # in a burst of thousands, the rest wait before their first remote call instead of all
    # holding request state. Settling is not counted: its reads are served by scope lists.
    reconciles: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_RECONCILES)
    )


@dataclass(frozen=True)
class Retry:
    """When to reconcile the object again. `delay` None: not by itself (a terminal error); a
    change to its inputs, or the drift pass once its re-check is due, looks again."""

    message: str
    delay: float | None


@dataclass(frozen=True)
class Result:
    """What one reconcile asks the edge to write and post, in this order."""

    annotations: dict[str, str | None] = field(default_factory=dict)  # None removes one
    status: dict[str, Any] = field(default_factory=dict)  # a merge patch; empty: no change
    events: tuple[KubeEvent, ...] = ()
    retry: Retry | None = None  # None: done until something changes


NOTHING = Result()


@dataclass
class FinalWrite:
    """The identity writes of one reconcile. The job's Secrets are protected before either (its
    deletion will need them). The crash guards go to the API server at once; the identity and
    the run started ride on the reconcile's final write (`annotations`): until it lands, the
    guards find both again after a crash."""

    guard: CrashGuard
    protect: Callable[[SyncJob], Awaitable[None]]
    annotations: dict[str, str | None] = field(default_factory=dict)

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        await self.protect(job)
        await self.guard.mark_pending_create(job, pending)

    async def record_identity(self, job: SyncJob, remote_id: str) -> None:
        # A job adopted or recovered without a create of ours needs its Secrets kept as well.
        await self.protect(job)
        self.annotations[EXTERNAL_ID_ANNOTATION] = remote_id
        self.annotations[CREATE_PENDING_ANNOTATION] = None

    async def drop_pending_create(self, job: SyncJob) -> None:
        self.annotations[CREATE_PENDING_ANNOTATION] = None

    async def mark_run(self, job: SyncJob, mark: RunMark) -> None:
        await self.guard.mark_run(job, mark)

    async def record_run(self, job: SyncJob, mark: RunMark) -> None:
        self.annotations[RUN_ANNOTATION] = mark.encode()


def retry_delay(attempt: int, timing: Timing, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    ceiling = min(timing.backoff_cap_seconds, timing.backoff_base_seconds * 2 ** min(attempt, 30))
    return float(max(retry_after or 0.0, ceiling * random.uniform(0.5, 1.0)))


def terminal_record(
    prior: Mapping[str, Any],
    inputs: str,
    now: datetime.datetime,
    timing: Timing,
    *,
    deleting: bool = False,
) -> TerminalRecord:
    """The n-th check in a row of unchanged inputs waits twice as long as the one before; a
    blocked deletion waits the same short period every time."""
    same = condition(prior, TERMINAL) is not None and prior.get("failedInputs") == inputs
    checks = int(prior.get("terminalChecks") or 0) + 1 if same else 1
    delay = timing.blocked_deletion_seconds
    if not deleting:
        delay = min(
            timing.terminal_recheck_cap_seconds,
            timing.terminal_recheck_seconds * 2 ** min(checks - 1, 20),
        )
    return TerminalRecord(inputs, checks, now + datetime.timedelta(seconds=delay))


def terminal_check_due(prior: Mapping[str, Any], now: datetime.datetime) -> bool:
    text = prior.get("nextCheckTime")
    if not text:
        return True
    return now >= parse_time(str(text))


async def inputs_hash(job: SyncJob, secrets: SecretReader) -> str:
    """Identifies what a terminal error was computed from: the spec, the ownership annotations
    and the resourceVersion of each referenced Secret (or its absence), so a fix to any of them
    makes the job retry at once."""
    parts = [job.spec.fingerprint(), f"adopt={job.adopt}", f"id={job.external_id}"]
    for name in sorted(job.spec.secret_names()):
        try:
            _, version = await secrets.read(job.namespace, name)
        except CallError as error:
            version = error.code
        parts.append(f"{name}@{version}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class ObjectLog(logging.LoggerAdapter[logging.Logger]):
    """Lines about one object, prefixed with it as kopf prefixes its own."""

    def __init__(self, job: SyncJob) -> None:
        super().__init__(_LOG, {"object": f"[{job.namespace}/{job.name}]"})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{(self.extra or {}).get('object')} {msg}", kwargs


class Reconciler:
    def __init__(self, deps: Deps) -> None:
        """`index` holds every SyncJob of this operator (or shard), as its watch reports them."""
        self.deps = deps
        self.index = ObjectIndex()
        self.locks = KeyedLocks()  # a change, a deletion and the drift pass never interleave
        self._progress_read: dict[str, float] = {}  # by uid: when its progress was last read
        # By uid: when a change reconcile last read its remote job, while that is recent enough
        # for the drift pass to leave the object to a later pass (due_members).
        self._changed_at: dict[str, float] = {}
        # The create marker whose create this process saw answered, by uid: nothing of it is in
        # flight. Only an object's latest marker matters (a newer one replaces it).
        self.answered: dict[str, str] = {}
        # SyncJobs whose deletion finished here: they no longer need their Secrets, even
        # before the watch reports them gone.
        self.finished: set[str] = set()
        deps.claims.attach(self.index.get)

    # --- what is remembered of each SyncJob ------------------------------------------------

    def remember(self, uid: str, entries: Mapping[IndexKey, Any]) -> None:
        """The latest entries of one SyncJob (ownership.job_entries and its Member)."""
        self.index.replace(uid, entries)

    def forget(self, uid: str) -> None:
        """Everything kept of one SyncJob, with or without a finalizer (a SyncJob that never
        held a remote job is deleted without a deletion reconcile)."""
        self.index.remove(uid)
        self._progress_read.pop(uid, None)
        self._changed_at.pop(uid, None)
        OBJECT_STATES.states.pop(uid, None)
        self.answered.pop(uid, None)
        self.finished.discard(uid)

    def forget_unlisted(self, namespace: str | None, listed: Collection[str]) -> None:
        """After a listing of SyncJobs (in `namespace`; None: all), at start-up or after the
        watch was away: forgets the objects it did not return. They were deleted meanwhile,
        and no watch event says so."""
        for member in list(self.index.get(MEMBER_KEY)):
            job = member.job
            if job.uid not in listed and namespace in (None, job.namespace):
                self.forget(job.uid)
                self.deps.claims.forget(job)

    def due_members(self, now: float | None = None) -> Iterator[Member]:
        """The SyncJobs the drift pass looks at `now` (epoch seconds; default: now): those no
        change handler owns, nor read less than half a period ago (so at most one and a half
        periods pass between two reads of a remote job). Checked before anything is parsed:
        during a burst most objects are skipped."""
        now = time.time() if now is None else now
        fresh_since = now - self.deps.timing.drift_seconds / 2
        for uid, member in self.index.items(MEMBER_KEY):
            if now < member.handler_until:
                continue
            changed_at = self._changed_at.get(uid)
            if changed_at is not None:
                if changed_at > fresh_since:
                    continue
                del self._changed_at[uid]  # old enough: nothing more to remember
            yield member

    def secret_unneeded(self, namespace: str, name: str) -> bool:
        """No SyncJob of this operator still needs the Secret."""
        return not self.deps.claims.secret_users(namespace, name) - self.finished

    # --- the reconcile ---------------------------------------------------------------------

    async def reconcile(
        self,
        job: SyncJob,
        prior: Mapping[str, Any],
        *,
        trigger: Trigger,
        attempt: int = 0,
        restart: bool = False,
        still_current: Callable[[], bool] = lambda: True,
    ) -> Result:
        """Brings the remote job in line with `job` (or removes it, once `job` is being
        deleted) and says what to write. `attempt` counts the retries of this change so far;
        `restart`: the first look after the operator started; `still_current()` says, once
        the object's lock is held, whether `job` is still the latest state of the object."""
        prior = dict(prior)
        if job.paused:
            return self._paused(job, prior, trigger)
        if restart and converged(job, prior):
            # A restart reads converged SyncJobs in the next drift pass, one list per scope,
            # instead of all at once here: the same reads, without a burst of every object.
            return NOTHING
        now = datetime.datetime.now(datetime.UTC)
        if not job.deleting and await self._terminal_unchanged(job, prior, now):
            return NOTHING  # no provider call until the inputs change or the re-check is due
        deps, timing = self.deps, self.deps.timing
        write = FinalWrite(deps.guard, self._protect_secrets)
        ctx = converge.Context(
            provider=deps.providers[job.spec.provider],
            writer=write,
            claims=deps.claims,
            in_flight_seconds=timing.in_flight_seconds,
            answered=self.answered,
        )
        started = time.monotonic()
        async with self.locks.hold(job.uid):
            if not still_current():
                return NOTHING
            if job.deleting:
                outcome = await converge.remove(job, ctx)
            else:
                # A restart or the drift pass: each scope's list serves every other object.
                max_age = timing.list_age if restart or trigger == "drift" else None
                progress = trigger == "drift" and self._progress_due(job.uid)
                async with deps.reconciles:
                    outcome = await converge.converge(job, ctx, max_age=max_age, progress=progress)
            outcome = await self._settle(job, ctx, outcome)
        if trigger == "change" and outcome.error is None and outcome.observation is not None:
            self._changed_at[job.uid] = time.time()
        RECONCILE_SECONDS.labels(job.spec.provider, trigger).observe(time.monotonic() - started)
        error = outcome.error
        blocked = outcome.action != "orphaned" and error is not None and not error.retryable
        terminal = None
        if blocked:
            inputs = await inputs_hash(job, deps.secrets)
            terminal = terminal_record(prior, inputs, now, timing, deleting=job.deleting)
        result = self._conclude(job, prior, outcome, trigger, terminal, write.annotations)
        retry = self._retry(job, outcome, attempt, trigger)
        if job.deleting and retry is None:
            await self._release_secrets(job)
            deps.claims.forget(job)
        return Result(result.annotations, result.status, result.events, retry)

    async def drift_check(self, member: Member) -> tuple[SyncJob, Result]:
        """The drift pass's look at one SyncJob, unless a change or a deletion owns it now."""
        job, prior = member.parse()
        if job.deleting:
            return job, NOTHING  # the deletion reconcile owns it
        if prior.get("observedGeneration") not in (None, job.generation):
            return job, NOTHING  # a spec change is being handled right now
        if self.locks.locked(job.uid):
            return job, NOTHING  # a reconcile is on it this moment
        # No status at all: it was lost, or a restored object's handler state says it was
        # handled already. Reconcile it here: its identity annotation says which job is its.
        result = await self.reconcile(
            job,
            prior,
            trigger="drift",
            # A change may take the object's lock while this waits for it, and bring the
            # remote job to a newer spec: acting on this member then would "correct" the
            # remote job back to the spec it replaced.
            still_current=lambda: self.index.value(job.uid, MEMBER_KEY) == member,
        )
        if member.stale_annotation is None or result is NOTHING:
            return job, result
        ObjectLog(job).warning("the handler's retry of the last change is overdue: cleared")
        annotations = {**result.annotations, member.stale_annotation: None}
        return job, Result(annotations, result.status, result.events, result.retry)

    def _paused(self, job: SyncJob, prior: dict[str, Any], trigger: Trigger) -> Result:
        """As Crossplane: no remote call at all. A paused SyncJob being deleted keeps its
        finalizer, and its remote job, until the annotation goes."""
        result = self._conclude(job, prior, Outcome(None, "paused"), trigger, None, {})
        if not job.deleting:
            return result
        message = (
            f"paused: the remote job is deleted once the annotation {PAUSED_ANNOTATION} is removed"
        )
        return Result(status=result.status, retry=Retry(message, self.deps.timing.drift_seconds))

    async def _terminal_unchanged(
        self, job: SyncJob, prior: Mapping[str, Any], now: datetime.datetime
    ) -> bool:
        """A terminal error is on record, its re-check is not due, and nothing it was computed
        from changed. (Secrets are read for the hash only when a terminal error is on record.)"""
        return (
            condition(prior, TERMINAL) is not None
            and not terminal_check_due(prior, now)
            and prior.get("failedInputs") == await inputs_hash(job, self.deps.secrets)
        )

    def _progress_due(self, uid: str) -> bool:
        period = self.deps.timing.progress_seconds
        now = time.monotonic()
        # A SyncJob seen for the first time (a new one, or all of them after a restart) gets a
        # random last read, so first reads spread over a period instead of coming at once.
        last = self._progress_read.setdefault(uid, now - random.uniform(0, period))
        if now - last < period:
            return False
        self._progress_read[uid] = now
        return True

    async def _settle(self, job: SyncJob, ctx: converge.Context, outcome: Outcome) -> Outcome:
        """Follows a job that moves on its own (CREATING, DELETING) until it settles or the
        settle period ends, reading through its scope's list: no retry, no write per poll."""
        timing = self.deps.timing
        deadline = time.monotonic() + timing.settle_seconds
        while not outcome.done and outcome.error is None and time.monotonic() < deadline:
            await asyncio.sleep(timing.poll_seconds)
            outcome = await converge.follow(job, ctx, outcome, max_age=timing.poll_seconds / 2)
        return outcome

    def _retry(
        self, job: SyncJob, outcome: Outcome, attempt: int, trigger: Trigger
    ) -> Retry | None:
        """When to look again. The drift pass's next period is its own retry: it counts none."""
        error, timing = outcome.error, self.deps.timing
        if job.deleting and outcome.action == "orphaned":
            return None  # one attempt at releasing the mark: it never blocks the deletion
        if error is not None and not error.retryable and job.deleting:
            # Never "done" here: the finalizer would go and strand the remote job.
            return Retry(
                f"cannot delete the remote job: {error}; fix access or set deletionPolicy: Orphan",
                timing.blocked_deletion_seconds,
            )
        if error is not None and not error.retryable:
            return Retry(f"{error.code}: {error.message}", None)
        if error is not None:
            if trigger != "drift":
                RETRIES.labels(job.spec.provider, error.code).inc()
            return Retry(str(error), retry_delay(attempt, timing, error.retry_after))
        if not outcome.done:
            # Followed for a whole settle period already: look again soon.
            state = outcome.observation.state if outcome.observation else "unknown"
            return Retry(
                f"waiting for the remote job to settle (state {state})", timing.poll_seconds
            )
        return None

    def _conclude(
        self,
        job: SyncJob,
        prior: dict[str, Any],
        outcome: Outcome,
        trigger: Trigger,
        terminal: TerminalRecord | None,
        annotations: dict[str, str | None],
    ) -> Result:
        now = datetime.datetime.now(datetime.UTC)
        status = compute_status(job, outcome, prior, now, terminal=terminal)
        error = outcome.error
        RECONCILES.labels(job.spec.provider, trigger, _outcome_label(outcome)).inc()
        state = (status.get("remote") or {}).get("state", "UNKNOWN")
        OBJECT_STATES.set(job.uid, job.spec.provider, state)
        if error is not None and not error.retryable:
            TERMINAL_ERRORS.labels(job.spec.provider, error.code).inc()
        found = kube_events(outcome, prior, status, trigger=trigger)
        return Result(annotations, status_patch(status, prior), tuple(found))

    # --- the Secrets a SyncJob's deletion needs --------------------------------------------

    async def _protect_secrets(self, job: SyncJob) -> None:
        """Keeps the credentials a deletion will need (namespace deletion removes Secrets and
        SyncJobs together). A Secret that is missing is the provider's error to report."""
        for name in sorted(job.spec.secret_names()):
            try:
                await self.deps.secrets.protect(job.namespace, name)
            except CallError as error:
                if error.code != "SecretNotFound":
                    ObjectLog(job).warning(
                        f"cannot protect Secret {name}: {error.code}: {error.message}"
                    )

    async def _release_secrets(self, job: SyncJob) -> None:
        self.finished.add(job.uid)
        for name in sorted(job.spec.secret_names()):
            if self.secret_unneeded(job.namespace, name):
                await self.release_secret(job.namespace, name)

    async def release_secret(self, namespace: str, name: str) -> None:
        try:
            await self.deps.secrets.release(namespace, name)
        except CallError as error:
            # Released again when the Secret itself is deleted (the Secret's watch).
            _LOG.warning(f"cannot release Secret {namespace}/{name}: {error.code}: {error.message}")


def _outcome_label(outcome: Outcome) -> str:
    if outcome.error is not None:
        return "retryable_error" if outcome.error.retryable else "terminal_error"
    return outcome.action
