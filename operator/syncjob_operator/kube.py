"""The Kubernetes side of the edge: Secret reads and the status writes that cannot wait for
kopf's end-of-handler patch (the create-pending marker and the new remote identity)."""

from __future__ import annotations

import base64
import datetime
import time
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from syncjob_operator.model import PendingCreate, SyncJob
from syncjob_operator.providers.base import Observation, ProviderError

GROUP, VERSION, PLURAL = "syncjob.dev", "v1alpha1", "syncjobs"
MERGE_PATCH = "application/merge-patch+json"


class KubeSecrets:
    """Reads Secrets in the SyncJob's own namespace; values never leave this process.

    One reconcile reads the same Secret for every remote call (each Truto request, each boto3
    client lookup): a read is reused for `ttl` seconds, so a Secret costs one GET per reconcile,
    and an edit to it is seen within `ttl`.
    """

    def __init__(self, api: client.ApiClient, *, ttl: float = 5.0) -> None:
        self._core = client.CoreV1Api(api)
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str], str]] = {}

    async def read(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        cached = self._cache.get((namespace, name))
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1], cached[2]
        self._cache.pop((namespace, name), None)
        try:
            secret = await self._core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise ProviderError(
                    "SecretNotFound", f"Secret {namespace}/{name} does not exist", retryable=False
                ) from exc
            if exc.status == 403:
                raise ProviderError(
                    "SecretForbidden",
                    f"the operator may not read Secret {namespace}/{name} (check its RBAC)",
                    retryable=False,
                ) from exc
            raise ProviderError(
                "KubernetesAPIError", f"reading Secret: {exc.reason}", retryable=True
            ) from exc
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        version = str(secret.metadata.resource_version)
        self._cache[(namespace, name)] = (time.monotonic(), data, version)
        return data, version


class KubeStatusWriter:
    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    async def _patch_status(self, job: SyncJob, status: dict[str, Any]) -> None:
        try:
            await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                job.namespace,
                PLURAL,
                job.name,
                {"status": status},
                # The generated client would pick strategic-merge, which custom resources reject.
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        except ApiException as exc:
            # Classified like a provider error, so reconcile returns it as a value and the
            # handler backs off and reports it instead of kopf's generic 60 s retry.
            raise ProviderError(
                "KubernetesAPIError", f"writing status: {exc.status} {exc.reason}", retryable=True
            ) from exc

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        started = pending.started_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
        await self._patch_status(
            job, {"pendingCreate": {"startedAt": started, "specHash": pending.spec_hash}}
        )

    async def record_identity(self, job: SyncJob, observed: Observation) -> None:
        await self._patch_status(
            job,
            {"pendingCreate": None, "remote": {"id": observed.remote_id, "state": observed.state}},
        )
