"""The Kubernetes side of the edge: Secret reads and protection, the writes that cannot wait
for kopf's end-of-handler patch (the create-pending marker with the finalizer), and the writes
of the drift pass, which runs outside kopf's handlers (identity, status).

The official `kubernetes` client blocks, so every call runs on a bounded thread pool of its own
(`KubeCalls`), never on kopf's event loop, as boto3's do."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import urllib3.exceptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from syncjob_operator.keyedlocks import KeyedLocks
from syncjob_operator.model import (
    CREATE_PENDING_ANNOTATION,
    FINALIZER,
    RUN_ANNOTATION,
    PendingCreate,
    RunMark,
    SyncJob,
)
from syncjob_operator.providers.base import CallError

_LOG = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "syncjob.dev", "v1alpha1", "syncjobs", "SyncJob"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "syncjob-operator"
# Objects per LIST page, here and in kopf's own listing: one response for 10,000 SyncJobs is
# tens of MB parsed at once, a high-water mark the process then keeps.
LIST_PAGE_SIZE = 500

T = TypeVar("T")
UNREACHABLE = "KubernetesUnreachable"


class KubeError(CallError):
    """One of the operator's own Kubernetes calls failed (Secrets, annotations, status)."""


def unreachable(error: urllib3.exceptions.HTTPError) -> KubeError:
    """A request the API server did not answer (refused, reset, timed out): retryable, named by
    the transport's error class, once, here. The official client raises urllib3's errors as
    they are (MaxRetryError chaining the one that ended its retries)."""
    cause = getattr(error, "reason", None) or error
    return KubeError(
        UNREACHABLE, f"the API server did not answer ({type(cause).__name__})", retryable=True
    )


class KubeCalls:
    """Runs the official client's blocking calls on a bounded executor."""

    def __init__(self, api: client.ApiClient, executor: Executor) -> None:
        self._api = api
        self.custom = client.CustomObjectsApi(api)
        self._executor = executor

    async def __call__(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, functools.partial(call, *args, **kwargs)
            )
        except urllib3.exceptions.HTTPError as error:
            raise unreachable(error) from None  # the class says it all: no chained traceback

    async def secret(
        self, namespace: str, name: str, *, patch: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Reads a Secret, or JSON-patches it, as a plain dict. Through the client's generic
        request path: its `CoreV1Api`, for these two calls, is 21 MiB of generated code."""
        headers = {"Accept": "application/json"}
        if patch is not None:
            headers["Content-Type"] = JSON_PATCH
        request = self._api.param_serialize(
            method="GET" if patch is None else "PATCH",
            resource_path="/api/v1/namespaces/{namespace}/secrets/{name}",
            path_params={"namespace": namespace, "name": name},
            header_params=headers,
            body=patch,
            auth_settings=["BearerToken"],
        )

        def call() -> dict[str, Any]:
            response = self._api.call_api(*request)
            response.read()  # type: ignore[no-untyped-call]
            return cast(
                dict[str, Any], self._api.response_deserialize(response, {"200": "object"}).data
            )

        return await self(call)


async def wait_until_served(kube: KubeCalls, stop: asyncio.Event, interval: float = 2.0) -> None:
    """Returns once the API server serves SyncJobs, or `stop` is set. kopf started before the
    CRD exists rescans discovery when the CRD appears, which can be before the resource is
    served: it then never watches SyncJobs (seen with Argo CD applying the CRD after the
    operator started). Discovery is open to every authenticated client: no RBAC needed."""
    warned = False
    while not stop.is_set():
        try:
            served = await kube(kube.custom.get_api_resources, GROUP, VERSION)
            if any(resource.name == PLURAL for resource in served.resources):
                return
        except ApiException as exc:
            if exc.status != 404:
                raise
        if not warned:
            _LOG.warning(f"waiting for the API server to serve {PLURAL}.{GROUP}/{VERSION}")
            warned = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def exact_namespaces(patterns: Iterable[str]) -> bool:
    """Whether every namespace pattern names one namespace (no glob, no negation, no list)."""
    patterns = list(patterns)
    return bool(patterns) and not any(c in p for p in patterns for c in "*?[!,")


async def list_syncjobs(
    kube: KubeCalls,
    namespaces: Sequence[str],
    labels: Mapping[str, str],
    *,
    watched: Callable[[str], bool],
    page_size: int = LIST_PAGE_SIZE,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every SyncJob the operator will watch, a page at a time: one LIST per named namespace
    (RBAC may be per namespace), otherwise one cluster-wide LIST kept to the namespaces
    `watched` accepts."""
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    for namespace in namespaces if exact_namespaces(namespaces) else [None]:
        token: str | None = None
        while True:
            options: dict[str, Any] = {"label_selector": selector, "limit": page_size}
            if token:
                options["_continue"] = token
            custom = kube.custom
            page = cast(
                dict[str, Any],
                await kube(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, **options)
                if namespace is None
                else await kube(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    **options,
                ),
            )
            yield [item for item in page["items"] if watched(item["metadata"]["namespace"])]
            token = page["metadata"].get("continue")
            if not token:
                break


SECRET_HOLD = "syncjob.dev/secret-in-use"


def secret_hold(selector: Mapping[str, str]) -> str:
    """The finalizer this operator puts on Secrets its SyncJobs use, and the label (of the same
    name, value "true") by which it watches only those Secrets. Each shard (label selector)
    holds its own: a shard sees only its own SyncJobs, so it may only ever release its own hold
    on a Secret that SyncJobs of several shards share."""
    if not selector:
        return SECRET_HOLD
    canonical = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return f"{SECRET_HOLD}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class _ReadSecret:
    at: float
    data: dict[str, str]
    version: str
    protected: bool


class KubeSecrets:
    """Reads Secrets in the SyncJob's own namespace; values never leave this process.

    One reconcile reads the same Secret for every remote call (each Truto request, each boto3
    client lookup): a read is reused for `ttl` seconds, so a Secret costs one GET per reconcile,
    and an edit to it is seen within `ttl`.

    A Secret a SyncJob uses carries this operator's hold (see secret_hold), so deleting a
    namespace cannot remove the credentials before the SyncJobs' remote jobs are deleted. The
    operator only ever adds or removes that finalizer and its label (the chart's admission
    policy refuses any other change by the operator).
    """

    def __init__(self, kube: KubeCalls, *, hold: str = SECRET_HOLD, ttl: float = 5.0) -> None:
        self._kube = kube
        self.hold = hold
        self._ttl = ttl
        self._cache: dict[tuple[str, str], _ReadSecret] = {}
        self._locks = KeyedLocks()

    async def read(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        secret = await self._read(namespace, name)
        return secret.data, secret.version

    async def _read(self, namespace: str, name: str, *, fresh: bool = False) -> _ReadSecret:
        cached = self._cache.get((namespace, name))
        if not fresh and cached is not None and time.monotonic() - cached.at < self._ttl:
            return cached
        self._cache.pop((namespace, name), None)
        try:
            secret = await self._kube.secret(namespace, name)
        except ApiException as exc:
            raise _secret_error(exc, namespace, name, "reading") from exc
        meta = secret["metadata"]
        read = _ReadSecret(
            at=time.monotonic(),
            data={k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()},
            version=str(meta["resourceVersion"]),
            protected=self.hold in meta.get("finalizers", []),
        )
        self._cache[(namespace, name)] = read
        return read

    async def protect(self, namespace: str, name: str) -> None:
        """Adds the in-use finalizer unless the Secret already has it (no write then). One at a
        time per Secret: a burst of SyncJobs sharing it makes one write, not a race of them."""
        async with self._locks.hold((namespace, name)):
            secret = await self._read(namespace, name)
            if not secret.protected:
                await self._set_protection(namespace, name, protected=True)

    async def release(self, namespace: str, name: str) -> None:
        """Removes the in-use finalizer, if the Secret (still) exists and has it."""
        try:
            secret = await self._read(namespace, name, fresh=True)
        except KubeError as error:
            if error.code == "SecretNotFound":
                return
            raise
        if secret.protected:
            await self._set_protection(namespace, name, protected=False)

    async def _set_protection(self, namespace: str, name: str, *, protected: bool) -> None:
        try:
            await self._patch_protection(namespace, name, protected=protected)
        except ApiException as exc:
            raise _secret_error(exc, namespace, name, "protecting") from exc
        finally:
            self._cache.pop((namespace, name), None)

    async def _patch_protection(self, namespace: str, name: str, *, protected: bool) -> None:
        # A JSON patch edits the finalizer list in place, guarded by the version it read.
        meta = (await self._kube.secret(namespace, name))["metadata"]
        finalizers = list(meta.get("finalizers", []))
        wanted = [f for f in finalizers if f != self.hold]
        if protected:
            wanted.append(self.hold)
        if wanted == finalizers:
            return
        version = meta["resourceVersion"]
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "add", "path": "/metadata/finalizers", "value": wanted},
        ]
        labels = meta.get("labels", {})
        label_path = "/metadata/labels/" + self.hold.replace("~", "~0").replace("/", "~1")
        if protected and labels.get(self.hold) != "true":
            if not labels:
                patch.append({"op": "add", "path": "/metadata/labels", "value": {}})
            patch.append({"op": "add", "path": label_path, "value": "true"})
        elif not protected and self.hold in labels:
            patch.append({"op": "remove", "path": label_path})
        await self._kube.secret(namespace, name, patch=patch)


def _secret_error(exc: ApiException, namespace: str, name: str, doing: str) -> KubeError:
    if exc.status == 404:
        return KubeError(
            "SecretNotFound", f"Secret {namespace}/{name} does not exist", retryable=False
        )
    if exc.status == 403:
        return KubeError(
            "SecretForbidden",
            f"the operator may not access Secret {namespace}/{name} ({doing}; check its RBAC)",
            retryable=False,
        )
    return KubeError(
        "KubernetesAPIError", f"{doing} Secret: {exc.status} {exc.reason}", retryable=True
    )


# A conditional write found the SyncJob at another version than the one read.
CHANGED = "SyncJobChanged"


def crash_guard(job: SyncJob, pending: PendingCreate) -> dict[str, Any]:
    """The server-side apply configuration of the crash guard: the create-pending marker and
    the finalizer, for this object (its uid) only, and only as it was read (its
    resourceVersion): of two writers that read the same object and both decided to create, one
    gets a conflict instead of sending a second create."""
    metadata: dict[str, Any] = {
        "name": job.name,
        "namespace": job.namespace,
        "uid": job.uid,
        "annotations": {CREATE_PENDING_ANNOTATION: pending.encode()},
        "finalizers": [FINALIZER],
    }
    if job.resource_version:
        metadata["resourceVersion"] = job.resource_version
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata}


class KubeCrashGuard:
    """Persists the crash guards (create-pending marker, pending run mark) as annotations on the
    SyncJob before the remote call they guard: they survive a backup restore, which drops
    status. Each write names the object's uid, so it can never land on a re-created object of
    the same name."""

    def __init__(self, kube: KubeCalls) -> None:
        self._kube = kube

    async def _patch(self, job: SyncJob, body: dict[str, Any], **options: Any) -> None:
        try:
            await patch_syncjob(self._kube, job, body, **options)
        except ApiException as exc:
            # Classified like a provider error, so reconcile returns it as a value and the
            # handler backs off and reports it instead of kopf's generic 60 s retry.
            if exc.status == 409:
                raise KubeError(
                    CHANGED,
                    "the SyncJob changed since it was read; retrying with the current object",
                    retryable=True,
                ) from exc
            raise KubeError(
                "KubernetesAPIError",
                f"writing annotations: {exc.status} {exc.reason}",
                retryable=True,
            ) from exc

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        """The marker and the finalizer in one write, before the first remote create: from here
        on, deleting the SyncJob waits for the remote job to be deleted. Server-side apply adds
        the finalizer to whatever list the object has, with no read before.

        The write is conditional on the object as `job` was read. A conflict is re-judged on
        the object as it is now: any other change (kopf's progress, status) leaves the decision
        to create standing, and the write is made once more on that version; a marker or an
        identity written meanwhile (another writer decided first) is the conflict returned."""
        try:
            await self._apply_crash_guard(job, pending)
        except KubeError as error:
            if error.code != CHANGED:
                raise
            current = await self._read(job)
            if (current.uid, current.pending_create, current.external_id) != (
                job.uid,
                job.pending_create,
                job.external_id,
            ):
                raise
            await self._apply_crash_guard(current, pending)

    async def _apply_crash_guard(self, job: SyncJob, pending: PendingCreate) -> None:
        await self._patch(
            job,
            crash_guard(job, pending),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
        )

    async def _read(self, job: SyncJob) -> SyncJob:
        get = self._kube.custom.get_namespaced_custom_object
        try:
            body = await self._kube(get, GROUP, VERSION, job.namespace, PLURAL, job.name)
        except ApiException as exc:
            message = f"reading the SyncJob: {exc.status} {exc.reason}"
            raise KubeError("KubernetesAPIError", message, retryable=True) from exc
        return SyncJob.from_body(cast(dict[str, Any], body))

    async def mark_run(self, job: SyncJob, mark: RunMark) -> None:
        body = {"metadata": {"uid": job.uid, "annotations": {RUN_ANNOTATION: mark.encode()}}}
        # Explicit: custom resources accept no strategic-merge patch.
        await self._patch(job, body, _content_type=MERGE_PATCH)


class KubeStatusWriter:
    """Writes a SyncJob's annotations and status outside kopf's handlers (the per-scope drift
    pass). Each write names the object's uid: an object deleted or re-created meanwhile is
    left alone."""

    def __init__(self, kube: KubeCalls) -> None:
        self._kube = kube

    async def write(self, job: SyncJob, status: dict[str, Any]) -> None:
        await self._merge(job, {"status": status}, "writing status", status=True)

    async def annotate(self, job: SyncJob, annotations: Mapping[str, str | None]) -> None:
        """Sets annotations; None removes one."""
        body = {"metadata": {"annotations": dict(annotations)}}
        await self._merge(job, body, "writing annotations")

    async def _merge(
        self, job: SyncJob, body: dict[str, Any], doing: str, *, status: bool = False
    ) -> None:
        body.setdefault("metadata", {})["uid"] = job.uid
        try:
            await patch_syncjob(self._kube, job, body, status=status, _content_type=MERGE_PATCH)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise KubeError(
                    "KubernetesAPIError", f"{doing}: {exc.status} {exc.reason}", retryable=True
                ) from exc


async def patch_syncjob(
    kube: KubeCalls, job: SyncJob, body: dict[str, Any], *, status: bool = False, **options: Any
) -> None:
    """Patches the SyncJob (or its status subresource) with `options` (content type, ...)."""
    call = (
        kube.custom.patch_namespaced_custom_object_status
        if status
        else kube.custom.patch_namespaced_custom_object
    )
    await kube(call, GROUP, VERSION, job.namespace, PLURAL, job.name, body, **options)
