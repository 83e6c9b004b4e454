"""kopf's callbacks. Each parses what kopf hands it into a typed SyncJob, calls the one
reconcile (syncjob_operator.reconcile) and applies the Result it returns: the annotations,
the status and the Events, then the retry as kopf's signal. The drift pass applies its Results
here too, with direct writes instead of kopf's patch."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

import kopf
import pydantic

from syncjob_operator.drift import Member
from syncjob_operator.kopf_edge.settings import APPLY_PROGRESS, handler_until
from syncjob_operator.kube import GROUP, KIND, PLURAL, VERSION
from syncjob_operator.kube_events import KubeEvent
from syncjob_operator.model import PAUSED_ANNOTATION, SyncJob, may_hold_remote_job
from syncjob_operator.ownership import IndexKey, job_entries
from syncjob_operator.reconcile import MEMBER_KEY, ObjectLog, Reconciler, Result, Retry


class DirectWriter(Protocol):
    """Writes outside kopf's handlers (kube.KubeStatusWriter)."""

    async def annotate(self, job: SyncJob, annotations: Mapping[str, str | None]) -> None: ...

    async def write(self, job: SyncJob, status: dict[str, Any]) -> None: ...


class KopfHandlers:
    def __init__(self, reconciler: Reconciler, writer: DirectWriter) -> None:
        self.reconciler = reconciler
        self.writer = writer

    def prefill(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Indexes SyncJobs listed before kopf starts: complete before any handler runs."""
        for raw in bodies:
            self.on_watch_event(None, raw)

    def on_watch_event(self, event_type: str | None, raw: Mapping[str, Any]) -> None:
        """Keeps the index current from each watch event of a SyncJob, before kopf's handlers
        see it (slimwatch calls it, not kopf: run.py)."""
        body = kopf.Body(cast(kopf.RawBody, raw))
        uid = str(body.metadata.uid)
        if event_type == "DELETED":
            self.reconciler.forget(uid)
        else:
            self.reconciler.remember(uid, index_entries(body))

    async def on_change(
        self,
        body: kopf.Body,
        patch: kopf.Patch,
        retry: int,
        logger: kopf.Logger,
        reason: str,
        **_: Any,
    ) -> None:
        result = await self.reconciler.reconcile(
            _parse(body),
            body.get("status") or {},
            trigger="change",
            attempt=retry,
            restart=reason == "resume",
        )
        _apply_to_patch(result, body, patch, logger)

    async def delete(
        self, body: kopf.Body, patch: kopf.Patch, retry: int, logger: kopf.Logger, **_: Any
    ) -> None:
        result = await self.reconciler.reconcile(
            _parse(body), body.get("status") or {}, trigger="delete", attempt=retry
        )
        _apply_to_patch(result, body, patch, logger)

    async def drift_check(self, member: Member) -> None:
        """The drift pass's look at one SyncJob; the next pass is its retry."""
        job, result = await self.reconciler.drift_check(member)
        if result.annotations:
            await self.writer.annotate(job, result.annotations)
        if result.status:
            await self.writer.write(job, result.status)
        _post(kopf.Body(_reference(job)), result.events, ObjectLog(job))

    async def secret_event(self, body: kopf.Body, **_: Any) -> None:
        """A protected Secret being deleted that no SyncJob of this shard needs any more (its
        SyncJobs were deleted, or stopped referencing it) is released here; other shards
        release their own finalizers."""
        meta = body.metadata
        hold = self.reconciler.deps.secrets.hold
        if not meta.get("deletionTimestamp") or hold not in meta.get("finalizers", []):
            return
        namespace, name = str(meta.namespace), str(meta.name)
        if self.reconciler.secret_unneeded(namespace, name):
            await self.reconciler.release_secret(namespace, name)


def _apply_to_patch(
    result: Result, body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger
) -> None:
    """A handler's Result on kopf's final patch, its Events posted, its retry signalled."""
    patch.metadata.annotations.update(result.annotations)
    patch.status.update(result.status)
    _post(body, result.events, logger)
    _signal(result.retry)


def _signal(retry: Retry | None) -> None:
    if retry is None:
        return
    if retry.delay is None:
        raise kopf.PermanentError(retry.message)
    raise kopf.TemporaryError(retry.message, delay=retry.delay)


def _post(
    objs: kopf.Body,
    events: Iterable[KubeEvent],
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    for event in events:
        if event.warning:
            kopf.warn(objs, reason=event.reason, message=event.message)
            logger.warning(event.message)
        else:
            # kopf.event, not kopf.info: the posting level only gates kopf's log bridge.
            kopf.event(objs, type="Normal", reason=event.reason, message=event.message)
            logger.info(event.message)


def _parse(body: kopf.Body) -> SyncJob:
    try:
        return SyncJob.from_body(body)
    except pydantic.ValidationError as exc:
        # The CRD schema should make this unreachable; if it happens, retrying cannot help.
        raise kopf.PermanentError(f"spec does not match the SyncJob model: {exc}") from exc


def _reference(job: SyncJob) -> kopf.RawBody:
    """Enough of the object for kopf to post an Event about it outside a handler."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"namespace": job.namespace, "name": job.name, "uid": job.uid},
    }


def index_entries(body: kopf.Body) -> dict[IndexKey, Any]:
    """One SyncJob's entries in the index: its claims (ownership.job_entries) and its Member
    for the drift pass, with what kopf's annotations say about its change handler."""
    try:
        job = SyncJob.from_body(body)
    except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
        return {}  # the handlers report a body they cannot parse
    annotations = body.metadata.annotations
    member = Member.of(
        body,
        handler_until=handler_until(annotations, has_status=bool(body.get("status"))),
        stale_annotation=APPLY_PROGRESS if APPLY_PROGRESS in annotations else None,
    )
    return {**job_entries(job), MEMBER_KEY: member}


def _may_hold_remote_job(body: kopf.Body, **_: Any) -> bool:
    return may_hold_remote_job(body)


def register(
    registry: kopf.OperatorRegistry,
    handlers: KopfHandlers,
    *,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Registers every callback on `registry`; `labels` restricts this instance to a shard."""
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
        *resource, registry=registry, labels=selector, id="delete", when=_may_hold_remote_job
    )(handlers.delete)
    kopf.on.event(
        "",
        "v1",
        "secrets",
        registry=registry,
        labels={handlers.reconciler.deps.secrets.hold: "true"},
        id="secret",
    )(handlers.secret_event)
