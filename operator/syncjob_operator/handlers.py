"""kopf at the edge: parse the body, hand a typed SyncJob to reconcile, write status, post
Events, and turn the outcome into kopf's retry signals. No business logic lives here."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import kopf
import pydantic

from syncjob_operator import reconcile
from syncjob_operator.kube import GROUP, PLURAL, VERSION
from syncjob_operator.metrics import (
    OBJECT_STATES,
    RECONCILE_SECONDS,
    RECONCILES,
    RETRIES,
    TERMINAL_ERRORS,
)
from syncjob_operator.model import ProviderName, SyncJob
from syncjob_operator.providers.base import Provider, ProviderError, SecretReader
from syncjob_operator.reconcile import Outcome, StatusWriter
from syncjob_operator.status import compute_status, status_patch

Kind = Literal["apply", "resync", "delete"]

_EVENT_REASONS = {
    "created": "CreatedRemoteJob",
    "recreated": "RecreatedRemoteJob",
    "adopted": "AdoptedRemoteJob",
    "updated": "UpdatedRemoteJob",
    "deleted": "DeletedRemoteJob",
    "orphaned": "OrphanedRemoteJob",
}


@dataclass(frozen=True)
class Timing:
    poll_seconds: float = 2.0  # while the remote settles (CREATING, DELETING)
    resync_seconds: float = 60.0  # drift detection
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 300.0
    delete_blocked_seconds: float = 300.0  # re-check a terminal delete error this often


@dataclass
class Runtime:
    """What the handlers need, built once at startup."""

    providers: Mapping[ProviderName, Provider]
    writer: StatusWriter
    secrets: SecretReader
    timing: Timing = field(default_factory=Timing)
    # Change handlers and the resync timer of one object must not interleave remote writes.
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))


def retry_delay(attempt: int, timing: Timing, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter, never sooner than the provider asked."""
    ceiling = min(timing.backoff_cap_seconds, timing.backoff_base_seconds * 2 ** min(attempt, 30))
    return float(max(retry_after or 0.0, ceiling * random.uniform(0.5, 1.0)))


async def inputs_hash(job: SyncJob, secrets: SecretReader) -> str:
    """Identifies what a terminal error was computed from: the spec and the resourceVersion of
    each referenced Secret (or its absence), so a fix to either makes the job retry."""
    parts = [job.spec.fingerprint()]
    refs = []
    if job.spec.twinmaker and job.spec.twinmaker.credentials_secret_ref:
        refs.append(job.spec.twinmaker.credentials_secret_ref.name)
    if job.spec.truto:
        refs.append(job.spec.truto.token_secret_ref.name)
    for name in refs:
        try:
            _, version = await secrets.read(job.namespace, name)
        except ProviderError as error:
            version = error.code
        parts.append(f"{name}@{version}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _parse(body: Mapping[str, Any]) -> SyncJob:
    try:
        return SyncJob.from_body(dict(body))
    except pydantic.ValidationError as exc:
        # The CRD schema should make this unreachable; if it happens, retrying cannot help.
        raise kopf.PermanentError(f"spec does not match the SyncJob model: {exc}") from exc


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


class Handlers:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def apply(
        self, body: kopf.Body, patch: kopf.Patch, retry: int, logger: kopf.Logger, **_: Any
    ) -> None:
        await self._apply(body, patch, retry, logger, kind="apply")

    async def resync(
        self, body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any
    ) -> None:
        status = body.get("status") or {}
        if body.metadata.get("deletionTimestamp") or status.get(
            "observedGeneration"
        ) != body.metadata.get("generation"):
            return  # a change or delete handler owns this object right now
        if _condition(status, "Synced").get("status") == "False" and not _condition(
            status, "Terminal"
        ):
            return  # the change handler is retrying with its own backoff
        if _condition(status, "Ready").get("reason") == "Creating":
            return  # the change handler is polling until the remote settles
        await self._apply(body, patch, 0, logger, kind="resync")

    async def _apply(
        self, body: kopf.Body, patch: kopf.Patch, retry: int, logger: kopf.Logger, *, kind: Kind
    ) -> None:
        job = _parse(body)
        prior = dict(body.get("status") or {})
        # Secrets are read for the hash only when a terminal error is on record or being recorded.
        if _condition(prior, "Terminal") and prior.get("failedInputs") == await inputs_hash(
            job, self.runtime.secrets
        ):
            logger.debug("terminal error unchanged since the last attempt: no provider call")
            return
        provider = self.runtime.providers[job.spec.provider]
        started = time.monotonic()
        async with self.runtime.locks[job.uid]:
            outcome = await reconcile.apply(
                job, provider, self.runtime.writer, shared_list=kind == "resync"
            )
            deadline = started + self.runtime.timing.resync_seconds
            while kind == "resync" and not outcome.done and outcome.error is None:
                # Recreated by the timer: follow it until it settles, as a change handler would,
                # but never hold the object's lock past one resync period.
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(self.runtime.timing.poll_seconds)
                known = outcome.observation.remote_id if outcome.observation else None
                job = job.with_remote_id(known)
                outcome = await reconcile.apply(job, provider, self.runtime.writer)
        RECONCILE_SECONDS.labels(job.spec.provider, kind).observe(time.monotonic() - started)
        terminal = outcome.error is not None and not outcome.error.retryable
        inputs = await inputs_hash(job, self.runtime.secrets) if terminal else None
        self._conclude(body, patch, job, prior, outcome, logger, kind=kind, inputs=inputs)
        if kind == "apply":
            self._signal(job, outcome, retry)

    async def delete(
        self, body: kopf.Body, patch: kopf.Patch, retry: int, logger: kopf.Logger, **_: Any
    ) -> None:
        job = _parse(body)
        prior = dict(body.get("status") or {})
        provider = self.runtime.providers[job.spec.provider]
        async with self.runtime.locks[job.uid]:
            outcome = await reconcile.remove(job, provider)
        self._conclude(body, patch, job, prior, outcome, logger, kind="delete", inputs=None)
        error = outcome.error
        if error is not None and not error.retryable:
            # Never PermanentError here: kopf would release the finalizer and strand the job.
            raise kopf.TemporaryError(
                f"cannot delete the remote job: {error}; fix access or set deletionPolicy: Orphan",
                delay=self.runtime.timing.delete_blocked_seconds,
            )
        self._signal(job, outcome, retry)
        OBJECT_STATES.states.pop(job.uid, None)
        self.runtime.locks.pop(job.uid, None)

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
            state = outcome.observation.state if outcome.observation else "unknown"
            raise kopf.TemporaryError(
                f"waiting for the remote job to settle (state {state})", delay=timing.poll_seconds
            )

    def _conclude(
        self,
        body: kopf.Body,
        patch: kopf.Patch,
        job: SyncJob,
        prior: dict[str, Any],
        outcome: Outcome,
        logger: kopf.Logger,
        *,
        kind: Kind,
        inputs: str | None,
    ) -> None:
        now = datetime.datetime.now(datetime.UTC)
        status = compute_status(job, outcome, prior, now, failed_inputs=inputs)
        patch.status.update(status_patch(status, prior))
        error = outcome.error
        RECONCILES.labels(job.spec.provider, kind, _outcome_label(outcome)).inc()
        state = (status.get("remote") or {}).get("state", "UNKNOWN")
        OBJECT_STATES.states[job.uid] = (job.spec.provider, state)

        if outcome.action in _EVENT_REASONS:
            message = (
                f"remote job {(status.get('remote') or {}).get('id', '')} {outcome.action}".strip()
            )
            # kopf.event, not kopf.info: the posting level only gates kopf's log bridge.
            kopf.event(body, type="Normal", reason=_EVENT_REASONS[outcome.action], message=message)
            logger.info(message)
        if error is not None:
            if not error.retryable:
                TERMINAL_ERRORS.labels(job.spec.provider, error.code).inc()
            reason = "RemoteCallFailed" if error.retryable else "TerminalError"
            message = _condition(status, "Synced").get("message", str(error))
            kopf.warn(body, reason=reason, message=message)
            logger.warning(message)
        prior_state = (prior.get("remote") or {}).get("state")
        observed = outcome.observation
        if observed is not None and observed.failed and prior_state != "ERROR":
            message = _condition(status, "Ready").get("message", "")
            kopf.warn(body, reason="RemoteJobFailed", message=message)
            logger.warning(f"remote job failed: {message}")
        vanished = (
            observed is not None and not observed.exists and prior_state not in (None, "ABSENT")
        )
        if outcome.action == "recreated" or (vanished and kind != "delete"):
            then = "; recreated it" if outcome.action == "recreated" else ""
            message = f"the remote job was deleted outside the operator{then}"
            kopf.warn(body, reason="RemoteJobMissing", message=message)
            logger.warning(message)


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
    kopf.on.resume(*resource, registry=registry, labels=selector, id="apply")(handlers.apply)
    kopf.on.create(*resource, registry=registry, labels=selector, id="apply")(handlers.apply)
    kopf.on.update(*resource, registry=registry, labels=selector, field="spec", id="apply")(
        handlers.apply
    )
    kopf.on.delete(*resource, registry=registry, labels=selector, id="delete")(handlers.delete)
    kopf.timer(
        *resource,
        registry=registry,
        labels=selector,
        id="resync",
        interval=handlers.runtime.timing.resync_seconds,
        initial_delay=handlers.runtime.timing.resync_seconds,
    )(handlers.resync)


def configure_settings(settings: kopf.OperatorSettings, *, exact_namespaces: bool = False) -> None:
    """All kopf settings in one place; each non-default says why."""
    if exact_namespaces:
        # Named namespaces need no discovery of namespaces or CRDs, which per-namespace Roles
        # forbid: kopf would retry those lists for about a minute before watching anything.
        settings.scanning.disabled = True
    settings.persistence.finalizer = "syncjob.dev/finalizer"
    # The status schema is strict (no x-kubernetes-preserve-unknown-fields): the API server
    # would prune kopf's status-based progress, so keep progress and diff-base in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="syncjob.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="syncjob.dev", key="last-handled-configuration"
    )
    # kopf turns every INFO log of a handler into an Event (one API write each); we post our
    # own Events with reasons, so only warnings and errors go through the log bridge.
    settings.posting.level = logging.WARNING
    # A watch that silently dies would stop all reconciles: have the server end each watch
    # and reconnect, and bound every API request.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
