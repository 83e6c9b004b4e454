"""kopf at the edge: parse the body, hand a typed SyncJob to reconcile, write status, post
Events, and turn the outcome into kopf's retry signals. No business logic lives here."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import kopf
import pydantic

from syncjob_operator import reconcile
from syncjob_operator.drift import Member
from syncjob_operator.index import ObjectIndex
from syncjob_operator.keyedlocks import KeyedLocks
from syncjob_operator.kube import (
    GROUP,
    KIND,
    LIST_PAGE_SIZE,
    PLURAL,
    SECRET_HOLD,
    UNREACHABLE,
    VERSION,
)
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
    FINALIZER,
    PAUSED_ANNOTATION,
    RUN_ANNOTATION,
    PendingCreate,
    ProviderName,
    RunMark,
    SyncJob,
    parse_time,
)
from syncjob_operator.ownership import Claims, IndexKey, job_entries
from syncjob_operator.providers.base import Provider, ProviderError, SecretReader
from syncjob_operator.reconcile import IdentityWriter, Outcome
from syncjob_operator.status import (
    DELETING,
    READY,
    SYNCED,
    TERMINAL,
    TerminalRecord,
    compute_status,
    condition,
    condition_message,
    condition_reason,
    settled,
    status_patch,
)

# What started a reconcile: a change (create, update, resume), the drift pass, a deletion.
Trigger = Literal["apply", "resync", "delete"]

_EVENT_REASONS = {
    "created": "CreatedRemoteJob",
    "recreated": "RecreatedRemoteJob",
    "recovered": "RecoveredRemoteJob",
    "adopted": "AdoptedRemoteJob",
    "updated": "UpdatedRemoteJob",
    "deleted": "DeletedRemoteJob",
    "orphaned": "OrphanedRemoteJob",
    "released": "LeftRemoteJobAlone",
}
MEMBER_KEY = ("member",)  # the index key under which every SyncJob's Member is kept
INDEX_HANDLER_ID = "index"  # the event handler that keeps the index current
_LOG = logging.getLogger("syncjob_operator.objects")  # lines about one object, outside kopf
ANNOTATION_PREFIX = "syncjob.dev"
# kopf keeps a handler's progress in this annotation while it retries or polls, and removes it
# once the handler is done: its presence means the change handler owns the object.
APPLY_PROGRESS = f"{ANNOTATION_PREFIX}/apply"
# kopf's diff-base, written once a change is handled: without it, kopf has a change (the
# creation) still to handle, and the change handler owns the object.
LAST_HANDLED = f"{ANNOTATION_PREFIX}/last-handled-configuration"
# How long kopf waits for the watch to echo its own patch before handling the object again
# from older events (settings.persistence.consistency_timeout, default 5 s). In a burst of
# thousands of objects the watch lags by more than that, and kopf then handled an already
# created SyncJob's creation again from a stale event: extra writes and reads (a third of
# 1,000 objects at 5 s, about one in three at 10,000 with 30 s). A lost echo (a re-list) only
# delays that object's next handling by this much.
CONSISTENCY_TIMEOUT_SECONDS = 120.0
# A retry kopf has not run this long after its due time never will: kopf re-ran a handled
# change from a stale event, the re-run failed, and the newer event shows the change handled,
# so kopf sees nothing to do. The drift pass then owns the object and clears kopf's retry.
OVERDUE_RETRY_SECONDS = 2 * CONSISTENCY_TIMEOUT_SECONDS
# kopf's final patch is two requests, the metadata (its diff-base) and then the status: the
# first one's echo shows a handled object without status. The drift pass leaves such an
# object alone this long, or it writes the status a second time (7 of 100 objects did).
STATUS_IN_FLIGHT_SECONDS = 10.0
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


@dataclass(frozen=True)
class Timing:
    poll_seconds: float = 2.0  # while the remote settles (CREATING, DELETING)
    # A handler follows its job settling this long (one list per scope per poll, no write),
    # then hands it to a kopf retry: most jobs settle in seconds, a stuck one costs one retry
    # (and one progress write) per this period, not per poll.
    settle_seconds: float = 60.0
    resync_seconds: float = 60.0  # drift detection: one pass over every scope per period
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
        return self.resync_seconds / 2


class SecretKeeper(SecretReader, Protocol):
    hold: str  # this operator's (shard's) finalizer and label on the Secrets its SyncJobs use

    async def protect(self, namespace: str, name: str) -> None: ...

    async def release(self, namespace: str, name: str) -> None: ...


class StatusWriter(Protocol):
    async def write(self, job: SyncJob, status: dict[str, Any]) -> None: ...

    async def drop_annotation(self, job: SyncJob, key: str) -> None: ...


@dataclass
class HandlerDeps:
    """What the handlers need, built once at startup."""

    providers: Mapping[ProviderName, Provider]
    writer: IdentityWriter
    secrets: SecretKeeper
    status_writer: StatusWriter
    timing: Timing = field(default_factory=Timing)
    claims: Claims = field(default_factory=Claims)
    # Change handlers and the drift pass must not interleave remote writes on one object.
    locks: KeyedLocks = field(default_factory=lambda: KeyedLocks())
    # How many SyncJobs converge against their provider at once (--max-concurrent-reconciles):
    # in a burst of thousands, the rest wait before their first remote call instead of all
    # holding request state. Settling is not counted: its reads are served by scope lists.
    reconciles: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_RECONCILES)
    )
    answered: dict[str, str] = field(default_factory=dict)
    # SyncJobs whose deletion finished here: they no longer need their Secrets, even before
    # the watch reports them gone.
    finished: set[str] = field(default_factory=set)

    def context(self, job: SyncJob, writer: IdentityWriter) -> reconcile.Context:
        return reconcile.Context(
            provider=self.providers[job.spec.provider],
            writer=writer,
            claims=self.claims,
            in_flight_seconds=self.timing.in_flight_seconds,
            answered=self.answered,
        )


@dataclass
class GuardedWriter:
    """The identity writes of one reconcile. The job's Secrets are protected before either (its
    deletion will need them). The crash guard goes to the API server at once; the identity rides on
    `patch`, the handler's final write, when there is one."""

    kube: IdentityWriter
    protect: Callable[[SyncJob], Awaitable[None]]
    patch: kopf.Patch | None = None

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        await self.protect(job)
        await self.kube.mark_pending_create(job, pending)

    async def record_identity(self, job: SyncJob, remote_id: str) -> None:
        # A job adopted or recovered without a create of ours needs its Secrets kept as well.
        await self.protect(job)
        if self.patch is None:
            await self.kube.record_identity(job, remote_id)
            return
        self.patch.metadata.annotations[EXTERNAL_ID_ANNOTATION] = remote_id
        self.patch.metadata.annotations[CREATE_PENDING_ANNOTATION] = None

    async def mark_run(self, job: SyncJob, mark: RunMark) -> None:
        await self.kube.mark_run(job, mark)

    async def record_run(self, job: SyncJob, mark: RunMark) -> None:
        if self.patch is None:
            await self.kube.record_run(job, mark)
            return
        self.patch.metadata.annotations[RUN_ANNOTATION] = mark.encode()


@dataclass(frozen=True)
class Result:
    """A reconcile's outcome, the status merge patch it calls for (empty: nothing changed) and
    the Events it posts."""

    outcome: Outcome
    status: dict[str, Any]
    events: list[Event]


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
        except ProviderError as error:
            version = error.code
        parts.append(f"{name}@{version}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _parse(body: Mapping[str, Any]) -> SyncJob:
    try:
        return SyncJob.from_body(body)
    except pydantic.ValidationError as exc:
        # The CRD schema should make this unreachable; if it happens, retrying cannot help.
        raise kopf.PermanentError(f"spec does not match the SyncJob model: {exc}") from exc


def reference(job: SyncJob) -> kopf.RawBody:
    """Enough of the object for kopf to post an Event about it outside a handler."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"namespace": job.namespace, "name": job.name, "uid": job.uid},
    }


class Handlers:
    def __init__(self, runtime: HandlerDeps, on_started: Callable[[], None] = lambda: None) -> None:
        """`self.index` holds every SyncJob (filled before kopf starts: `prefill`); `on_started`
        is called once, from the first event handled, where kopf's context (Event posting) is
        current."""
        self.runtime = runtime
        self.index = ObjectIndex()
        self._on_started: Callable[[], None] | None = on_started
        self._progress_read: dict[str, float] = {}  # by uid: when its progress was last read
        runtime.claims.attach(self.index.get)

    def due_members(self, now: float | None = None) -> Iterator[Member]:
        """The SyncJobs (of this operator or shard) the drift pass looks at `now` (epoch
        seconds; default: now): those no change handler owns. Checked before anything is
        parsed: during a burst most are."""
        now = time.time() if now is None else now
        return (m for m in self.index.get(MEMBER_KEY) if now >= m.handler_until)

    def prefill(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Indexes SyncJobs listed before kopf starts: complete before any handler runs."""
        for raw in bodies:
            body = kopf.Body(cast(kopf.RawBody, raw))
            self.index.replace(str(body.metadata.uid), index_body(body))

    async def on_event(self, body: kopf.Body, type: str | None, **_: Any) -> None:
        """Keeps the index current; kopf runs it before the object's change handlers."""
        started, self._on_started = self._on_started, None
        if started is not None:
            started()
        uid = str(body.metadata.uid)
        if type == "DELETED":
            self._forget(uid)
        else:
            self.index.replace(uid, index_body(body))

    def forget_unlisted(self, namespace: str | None, listed: Collection[str]) -> None:
        """After kopf listed SyncJobs (in `namespace`; None: all), at start-up or again after its
        watch was away: drops what is kept of the objects the listing did not return. They were
        deleted meanwhile, and kopf sends no DELETED event for them."""
        for member in list(self.index.get(MEMBER_KEY)):
            job = member.job
            if job.uid not in listed and namespace in (None, job.namespace):
                self._forget(job.uid)
                self.runtime.claims.forget(job)

    def _forget(self, uid: str) -> None:
        # Everything kept per object goes here, with or without a finalizer (a SyncJob that never
        # held a remote job is deleted without the delete handler).
        self.index.remove(uid)
        self._progress_read.pop(uid, None)
        OBJECT_STATES.states.pop(uid, None)
        self.runtime.answered.pop(uid, None)
        self.runtime.finished.discard(uid)

    async def on_change(
        self,
        body: kopf.Body,
        patch: kopf.Patch,
        retry: int,
        logger: kopf.Logger,
        reason: str,
        **kwargs: Any,
    ) -> None:
        job = _parse(body)
        if reason == "resume" and settled(job, body.get("status") or {}):
            # A restart reads settled SyncJobs in the next drift pass, one list per scope,
            # instead of all at once here: the same reads, without a burst of every object.
            logger.debug("settled: left to the drift pass")
            return
        # On a restart, each scope's list serves every other object: one call per scope.
        max_age = self.runtime.timing.list_age if reason == "resume" else None
        writer = GuardedWriter(self.runtime.writer, self._protect_secrets, patch)
        result = await self._reconcile(
            job, dict(body.get("status") or {}), writer, trigger="apply", max_age=max_age
        )
        if result is None:
            logger.debug("terminal error unchanged and not due for a re-check: no provider call")
            return
        patch.status.update(result.status)
        _post(body, result.events, logger)
        self._signal(job, result.outcome, retry)

    async def resync(self, member: Member) -> None:
        """The drift pass's look at one SyncJob: its scope's list serves the read; status is
        written, and Events posted, only when something changed."""
        job, prior = member.parse()
        if job.deleting or job.paused:
            return  # the delete handler owns it now, or nothing is to be done
        if prior.get("observedGeneration") not in (None, job.generation):
            return  # a spec change is being handled right now
        if self.runtime.locks.locked(job.uid):
            return  # a handler is on it this moment
        # No status at all: it was lost, or a restored object's kopf annotations told kopf it
        # was handled already. Reconcile it here: its identity annotation says which job is its.
        writer = GuardedWriter(self.runtime.writer, self._protect_secrets)
        timing = self.runtime.timing
        result = await self._reconcile(
            job,
            prior,
            writer,
            trigger="resync",
            max_age=timing.list_age,
            progress=self._progress_due(job.uid),
            # A change handler may take the object's lock while this waits for it, and bring
            # the remote job to a newer spec: acting on this member then would "correct" the
            # remote job back to the spec it replaced.
            still_current=lambda: self.index.value(job.uid, MEMBER_KEY) == member,
        )
        if result is None:
            return
        if result.status:
            await self.runtime.status_writer.write(job, result.status)
        if member.retrying:
            _object_logger(job).warning("kopf's retry of the last change is overdue: cleared")
            await self.runtime.status_writer.drop_annotation(job, APPLY_PROGRESS)
        _post(kopf.Body(reference(job)), result.events, _object_logger(job))

    def _progress_due(self, uid: str) -> bool:
        period = self.runtime.timing.progress_seconds
        now = time.monotonic()
        # A SyncJob seen for the first time (a new one, or all of them after a restart) gets a
        # random last read, so first reads spread over a period instead of coming at once.
        last = self._progress_read.setdefault(uid, now - random.uniform(0, period))
        if now - last < period:
            return False
        self._progress_read[uid] = now
        return True

    async def _reconcile(
        self,
        job: SyncJob,
        prior: dict[str, Any],
        writer: IdentityWriter,
        *,
        trigger: Trigger,
        max_age: float | None,
        progress: bool = False,
        still_current: Callable[[], bool] = lambda: True,
    ) -> Result | None:
        """Converges `job` and follows it until it settles; None when a terminal error is on
        record, unchanged, and not due for a re-check (then nothing is called), or when
        `still_current()` says, once the object's lock is held, that `job` is out of date."""
        runtime = self.runtime
        if job.paused:
            return self._conclude(
                job, prior, Outcome(None, "paused"), trigger=trigger, terminal=None
            )
        now = datetime.datetime.now(datetime.UTC)
        # Secrets are read for the hash only when a terminal error is on record.
        if (
            condition(prior, TERMINAL)
            and not terminal_check_due(prior, now)
            and prior.get("failedInputs") == await inputs_hash(job, runtime.secrets)
        ):
            return None
        ctx = runtime.context(job, writer)
        started = time.monotonic()
        async with runtime.locks.hold(job.uid):
            if not still_current():
                return None
            async with runtime.reconciles:
                outcome = await reconcile.converge(job, ctx, max_age=max_age, progress=progress)
            outcome = await self._settle(job, ctx, outcome)
        RECONCILE_SECONDS.labels(job.spec.provider, trigger).observe(time.monotonic() - started)
        terminal = None
        if outcome.error is not None and not outcome.error.retryable:
            inputs = await inputs_hash(job, runtime.secrets)
            terminal = terminal_record(prior, inputs, now, runtime.timing)
        return self._conclude(job, prior, outcome, trigger=trigger, terminal=terminal)

    async def _settle(self, job: SyncJob, ctx: reconcile.Context, outcome: Outcome) -> Outcome:
        """Follows a job that moves on its own (CREATING, DELETING) until it settles or the
        settle period ends, reading through its scope's list: no kopf retry, no write per poll."""
        timing = self.runtime.timing
        deadline = time.monotonic() + timing.settle_seconds
        while not outcome.done and outcome.error is None and time.monotonic() < deadline:
            await asyncio.sleep(timing.poll_seconds)
            outcome = await reconcile.follow(job, ctx, outcome, max_age=timing.poll_seconds / 2)
        return outcome

    async def _protect_secrets(self, job: SyncJob) -> None:
        """Keeps the credentials a deletion will need (namespace deletion removes Secrets and
        SyncJobs together). A Secret that is missing is the provider's error to report."""
        for name in sorted(job.spec.secret_names()):
            try:
                await self.runtime.secrets.protect(job.namespace, name)
            except ProviderError as error:
                if error.code != "SecretNotFound":
                    _object_logger(job).warning(
                        f"cannot protect Secret {name}: {error.code}: {error.message}"
                    )

    async def delete(
        self, body: kopf.Body, patch: kopf.Patch, retry: int, logger: kopf.Logger, **kwargs: Any
    ) -> None:
        job = _parse(body)
        prior = dict(body.get("status") or {})
        runtime = self.runtime
        if job.paused:
            # As Crossplane: a paused object keeps its finalizer, and its remote job, until the
            # annotation goes; kopf looks again after the delay.
            result = self._conclude(
                job, prior, Outcome(None, "paused"), trigger="delete", terminal=None
            )
            patch.status.update(result.status)
            raise kopf.TemporaryError(
                f"paused: the remote job is deleted once the annotation {PAUSED_ANNOTATION} is"
                " removed",
                delay=runtime.timing.resync_seconds,
            )
        ctx = runtime.context(job, GuardedWriter(runtime.writer, self._protect_secrets, patch))
        now = datetime.datetime.now(datetime.UTC)
        async with runtime.locks.hold(job.uid):
            outcome = await reconcile.remove(job, ctx)
            outcome = await self._settle(job, ctx, outcome)
        error = outcome.error
        blocked = outcome.action != "orphaned" and error is not None and not error.retryable
        terminal = None
        if blocked:
            inputs = await inputs_hash(job, runtime.secrets)
            terminal = terminal_record(prior, inputs, now, runtime.timing, deleting=True)
        result = self._conclude(job, prior, outcome, trigger="delete", terminal=terminal)
        patch.status.update(result.status)
        _post(body, result.events, logger)
        if blocked:
            # Never PermanentError here: kopf would release the finalizer and strand the job.
            raise kopf.TemporaryError(
                f"cannot delete the remote job: {error}; fix access or set deletionPolicy: Orphan",
                delay=runtime.timing.blocked_deletion_seconds,
            )
        if outcome.action != "orphaned":
            self._signal(job, outcome, retry)
        await self._release_secrets(job, logger)
        runtime.claims.forget(job)

    async def _release_secrets(self, job: SyncJob, logger: kopf.Logger) -> None:
        runtime = self.runtime
        runtime.finished.add(job.uid)
        for name in sorted(job.spec.secret_names()):
            users = runtime.claims.secret_users(job.namespace, name) - runtime.finished
            if not users:
                await self._release_secret(job.namespace, name, logger)

    async def _release_secret(
        self, namespace: str, name: str, logger: logging.Logger | kopf.Logger
    ) -> None:
        try:
            await self.runtime.secrets.release(namespace, name)
        except ProviderError as error:
            # The Secret handler releases it again when the Secret itself is deleted.
            logger.warning(f"cannot release Secret {name}: {error.code}: {error.message}")

    async def secret_event(self, body: kopf.Body, logger: kopf.Logger, **kwargs: Any) -> None:
        """A protected Secret being deleted that no SyncJob of this shard needs any more (its
        SyncJobs were deleted, or stopped referencing it) is released here; other shards
        release their own finalizers."""
        meta = body.metadata
        hold = self.runtime.secrets.hold
        if not meta.get("deletionTimestamp") or hold not in meta.get("finalizers", []):
            return
        namespace, name = str(meta.namespace), str(meta.name)
        if not self.runtime.claims.secret_users(namespace, name) - self.runtime.finished:
            await self._release_secret(namespace, name, logger)

    def _signal(self, job: SyncJob, outcome: Outcome, retry: int) -> None:
        """Turns an outcome into kopf's retry protocol: the status is already in the patch."""
        error = outcome.error
        timing = self.runtime.timing
        if error is not None and not error.retryable:
            raise kopf.PermanentError(f"{error.code}: {error.message}")
        if error is not None:
            RETRIES.labels(job.spec.provider, error.code).inc()
            raise kopf.TemporaryError(
                str(error), delay=retry_delay(retry, timing, error.retry_after)
            )
        if not outcome.done:
            # Followed for a whole settle period already: look again soon, in a new handler run.
            state = outcome.observation.state if outcome.observation else "unknown"
            raise kopf.TemporaryError(
                f"waiting for the remote job to settle (state {state})", delay=timing.poll_seconds
            )

    def _conclude(
        self,
        job: SyncJob,
        prior: dict[str, Any],
        outcome: Outcome,
        *,
        trigger: Trigger,
        terminal: TerminalRecord | None,
    ) -> Result:
        now = datetime.datetime.now(datetime.UTC)
        status = compute_status(job, outcome, prior, now, terminal=terminal)
        error = outcome.error
        RECONCILES.labels(job.spec.provider, trigger, _outcome_label(outcome)).inc()
        state = (status.get("remote") or {}).get("state", "UNKNOWN")
        OBJECT_STATES.set(job.uid, job.spec.provider, state)
        if error is not None and not error.retryable:
            TERMINAL_ERRORS.labels(job.spec.provider, error.code).inc()
        remote_id = (status.get("remote") or {}).get("id", "")
        found = events(outcome, prior, status, trigger=trigger, remote_id=remote_id)
        return Result(outcome, status_patch(status, prior), found)


def _post(objs: kopf.Body, found: list[Event], logger: logging.Logger | kopf.Logger) -> None:
    for event in found:
        if event.warning:
            kopf.warn(objs, reason=event.reason, message=event.message)
            logger.warning(event.message)
        else:
            # kopf.event, not kopf.info: the posting level only gates kopf's log bridge.
            kopf.event(objs, type="Normal", reason=event.reason, message=event.message)
            logger.info(event.message)


class _ObjectLog(logging.LoggerAdapter[logging.Logger]):
    """Outside kopf's handlers: lines prefixed with the object, as kopf's own are."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return f"{(self.extra or {}).get('object')} {msg}", kwargs


def _object_logger(job: SyncJob) -> _ObjectLog:
    return _ObjectLog(_LOG, {"object": f"[{job.namespace}/{job.name}]"})


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


def events(
    outcome: Outcome,
    prior: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    trigger: Trigger,
    remote_id: str,
) -> list[Event]:
    """The Events one reconcile posts, as a pure function of its outcome and the status."""
    found: list[Event] = []
    error = outcome.error
    action = outcome.action
    if action == "updated" and trigger == "resync":
        what = ", ".join(outcome.drift) or "content"
        found.append(
            Event("DriftCorrected", f"remote job {remote_id} drifted ({what}); corrected", True)
        )
    elif action in _EVENT_REASONS and not (action == "orphaned" and error is not None):
        message = f"remote job {remote_id} {action}".replace("  ", " ")
        if outcome.detail:
            message = f"{message}: {outcome.detail}"
        found.append(Event(_EVENT_REASONS[action], message))
    if error is not None:
        if action == "orphaned":
            found.append(
                Event(
                    "ReleaseFailed",
                    f"orphaned without releasing the ownership mark: {error}",
                    True,
                )
            )
        elif trigger == "delete" and not error.retryable:
            if not _still_blocked(prior, status):
                message = condition_message(status, SYNCED) or str(error)
                found.append(Event("DeletionBlocked", message, True))
        elif error.code != UNREACHABLE:  # an Event cannot reach an API server that is away
            reason = "RemoteCallFailed" if error.retryable else "TerminalError"
            found.append(Event(reason, condition_message(status, SYNCED) or str(error), True))
    prior_state = (prior.get("remote") or {}).get("state")
    observed = outcome.observation
    if observed is not None and observed.failed and prior_state != "ERROR":
        found.append(Event("RemoteJobFailed", condition_message(status, READY) or "", True))
    if outcome.run_started is not None:
        run = outcome.run_started
        found.append(Event("RunStarted", f"run {run.run_id} of remote job {remote_id} started"))
    last, before = status.get("lastRun") or {}, prior.get("lastRun") or {}
    if last.get("status") == "failed" and (before.get("id"), before.get("status")) != (
        last.get("id"),
        "failed",
    ):
        why = f": {last['error']}" if last.get("error") else ""
        found.append(Event("RunFailed", f"run {last.get('id')} failed{why}", True))
    was_failing = (prior.get("syncProgress") or {}).get("ERROR", 0)
    failing = (status.get("syncProgress") or {}).get("ERROR", 0)
    if failing and not was_failing:
        first = (status.get("syncProgress") or {}).get("errors") or [{}]
        example = " ".join(str(first[0].get(k, "")) for k in ("resourceType", "externalId", "code"))
        message = f"{failing} resource(s) of remote job {remote_id} in ERROR, e.g. {example}"
        found.append(Event("SyncResourceErrors", message.strip(), True))
    vanished = observed is not None and not observed.exists and prior_state not in (None, "ABSENT")
    if action == "recreated" or (vanished and trigger != "delete"):
        then = "; recreated it" if action == "recreated" else ""
        message = f"the remote job was deleted outside the operator{then}"
        found.append(Event("RemoteJobMissing", message, True))
    return found


def _still_blocked(prior: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """The previous check of this deletion was blocked by the same error. A blocked deletion
    is checked every BLOCKED_DELETION_RECHECK_SECONDS: its Event is posted when the block starts
    or its error changes, not at every check (the conditions always say it)."""
    before, now = condition(prior, TERMINAL), condition(status, TERMINAL)
    return (
        condition_reason(prior, READY) == DELETING
        and before is not None
        and now is not None
        and (before.get("reason"), before.get("message")) == (now.get("reason"), now.get("message"))
    )


def index_body(body: kopf.Body) -> dict[IndexKey, Any]:
    """One SyncJob's entries in the index: its claims (ownership.job_entries) and its Member
    for the drift pass."""
    try:
        job = SyncJob.from_body(body)
    except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
        return {}  # the handlers report a body they cannot parse
    annotations = body.metadata.annotations
    member = Member.of(
        body,
        handler_until=_handler_until(annotations, has_status=bool(body.get("status"))),
        retrying=annotations.get(APPLY_PROGRESS) is not None,
    )
    return {**job_entries(job), MEMBER_KEY: member}


def _handler_until(annotations: Mapping[str, str], *, has_status: bool) -> float:
    """Until when kopf's change handler owns the object (Member.handler_until)."""
    if LAST_HANDLED not in annotations:
        return math.inf  # kopf handles a creation on every event until it is handled
    progress = annotations.get(APPLY_PROGRESS)
    if progress is None:
        # Handled, no status: kopf's status write follows its metadata write, or the status
        # was lost (then the drift pass rebuilds it once this has passed).
        return 0.0 if has_status else time.time() + STATUS_IN_FLIGHT_SECONDS
    try:
        state = json.loads(progress)
        due = parse_time(state.get("delayed") or state["started"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return math.inf  # not kopf's format: leave it to kopf
    return due.timestamp() + OVERDUE_RETRY_SECONDS


def may_hold_remote_job(body: kopf.Body, **_: Any) -> bool:
    """Whether deleting this SyncJob may have to delete a remote job: it records an identity,
    or a create may have been sent for it."""
    annotations = body.metadata.annotations
    remote = (body.get("status") or {}).get("remote") or {}
    if body.spec.get("managementPolicy") == "ObserveOnly":
        return False  # it never deletes: nothing to wait for
    return bool(
        annotations.get(EXTERNAL_ID_ANNOTATION)
        or annotations.get(CREATE_PENDING_ANNOTATION)
        or remote.get("id")
    )


def _outcome_label(outcome: Outcome) -> str:
    if outcome.error is not None:
        return "retryable_error" if outcome.error.retryable else "terminal_error"
    return outcome.action


def register(
    registry: kopf.OperatorRegistry, handlers: Handlers, *, labels: Mapping[str, str] | None = None
) -> None:
    """Registers every handler on `registry`; `labels` restricts this instance to a shard."""
    selector: dict[str, Any] = dict(labels or {})
    resource = (GROUP, VERSION, PLURAL)
    kopf.on.resume(*resource, registry=registry, labels=selector, id="apply")(handlers.on_change)
    kopf.on.create(*resource, registry=registry, labels=selector, id="apply")(handlers.on_change)
    kopf.on.update(*resource, registry=registry, labels=selector, field="spec", id="apply")(
        handlers.on_change
    )
    # Pausing or resuming changes no spec: the annotation has a handler of its own.
    kopf.on.update(
        *resource,
        registry=registry,
        labels=selector,
        field=("metadata", "annotations", PAUSED_ANNOTATION),
        id="pause",
    )(handlers.on_change)
    # The delete handler (and so kopf's finalizer) is needed only once a SyncJob may hold a
    # remote job. The operator adds the finalizer itself, in the same write as the crash guard
    # before its first create: no separate write for it. kopf adds it for identities set by
    # hand (adoption) and releases it, without a call, from objects that never held a job.
    kopf.on.delete(
        *resource, registry=registry, labels=selector, id="delete", when=may_hold_remote_job
    )(handlers.delete)
    # Every SyncJob's claim, owner name and Secrets, for the ownership rules and the drift
    # pass: filled before kopf starts (Handlers.prefill), kept current here (index.py says
    # why not kopf.index).
    kopf.on.event(*resource, registry=registry, labels=selector, id=INDEX_HANDLER_ID)(
        handlers.on_event
    )
    kopf.on.event(
        "",
        "v1",
        "secrets",
        registry=registry,
        labels={handlers.runtime.secrets.hold: "true"},
        id="secret",
    )(handlers.secret_event)


def configure_settings(
    settings: kopf.OperatorSettings,
    *,
    exact_namespaces: bool = False,
    peering_lifetime: int = 60,
    shard: Mapping[str, str] | None = None,
    secret_hold: str = SECRET_HOLD,
) -> None:
    """All kopf settings in one place; each non-default says why."""
    # The user's trade-off between failover time and keep-alive writes (--peering-lifetime).
    settings.peering.lifetime = peering_lifetime
    if shard:
        # A shard watches only its own SyncJobs, server-side. Handler label filters alone are
        # not enough: kopf releases its finalizer from an object no deletion handler of its
        # own matches, so a shard would strip the others' finalizers, and their deletions
        # would then skip the remote job and the Secret release.
        selector = ",".join(f"{key}={value}" for key, value in sorted(shard.items()))
        settings.watching.label_selectors[GROUP, PLURAL] = selector
    # Only the Secrets this operator holds (the Secret handler's label, server-side).
    settings.watching.label_selectors["secrets"] = f"{secret_hold}=true"
    # No worker limit (settings.queueing.worker_limit). A worker keeps its slot while its
    # object waits out a kopf retry or settles, so in a provider outage retrying objects would
    # hold every slot and starve the rest; and 1,000 did not lower a 10,000-object burst's peak
    # memory (docs/benchmarks.md).
    if exact_namespaces:
        # Named namespaces need no discovery of namespaces or CRDs, which per-namespace Roles
        # forbid: kopf would retry those lists for about a minute before watching anything.
        settings.scanning.disabled = True
    settings.persistence.finalizer = FINALIZER
    # The status schema is strict (no x-kubernetes-preserve-unknown-fields): the API server
    # would prune kopf's status-based progress, so keep progress and diff-base in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key=LAST_HANDLED.removeprefix(f"{ANNOTATION_PREFIX}/")
    )
    settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT_SECONDS
    # kopf turns every INFO log of a handler into an Event (one API write each); we post our
    # own Events with reasons, so only warnings and errors go through the log bridge.
    settings.posting.level = logging.WARNING
    # A watch that silently dies would stop all reconciles: have the server end each watch
    # and reconnect, and bound every API request.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # kopf's own LIST in pages, as the index's (kube.LIST_PAGE_SIZE says why).
    settings.watching.chunk_size = LIST_PAGE_SIZE
