"""Typed SyncJobs and SyncJob bodies the unit tests share."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from syncjob_operator.model import (
    ADOPTION_POLICY_ANNOTATION,
    CREATE_PENDING_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    PendingCreate,
    SyncJob,
    SyncJobSpec,
)
from syncjob_operator.providers.base import Observation

TWINMAKER_SPEC: dict[str, Any] = {
    "awsIoTTwinMaker": {
        "region": "us-east-1",
        "workspaceId": "ws",
        "syncSource": "SITEWISE",
        "syncRole": "arn:aws:iam::123456789012:role/r",
    }
}

TRUTO_SPEC: dict[str, Any] = {
    "truto": {
        "integrationName": "hubspot",
        "argsSchema": {"type": "object"},
        "resources": [{"resource": "crm/contacts", "method": "list", "loopOn": "ids"}],
        "tokenSecretRef": {"name": "truto-token", "key": "token"},
    }
}

TWINMAKER_JOB = SyncJob(
    namespace="ns",
    name="job",
    uid="u1",
    generation=3,
    spec=SyncJobSpec.model_validate(TWINMAKER_SPEC),
    created_at="2026-01-01T00:00:00Z",
)

TRUTO_JOB = dataclasses.replace(TWINMAKER_JOB, spec=SyncJobSpec.model_validate(TRUTO_SPEC))


def orphan(job: SyncJob) -> SyncJob:
    """`job` with deletionPolicy: Orphan."""
    return dataclasses.replace(job, spec=job.spec.model_copy(update={"deletion_policy": "Orphan"}))


def body(
    *,
    namespace: str = "ns",
    name: str = "job",
    uid: str = "u1",
    spec: dict[str, Any] | None = None,
    generation: int = 3,
    created: str = "2026-01-01T00:00:00Z",
    external_id: str | None = None,
    status_id: str | None = None,
    pending: PendingCreate | None = None,
    adopt: bool = False,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A SyncJob as the API server returns it, with the operator's annotations where given."""
    notes = dict(annotations or {})
    if external_id is not None:
        notes[EXTERNAL_ID_ANNOTATION] = external_id
    if pending is not None:
        notes[CREATE_PENDING_ANNOTATION] = pending.encode()
    if adopt:
        notes[ADOPTION_POLICY_ANNOTATION] = "adopt"
    meta: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "uid": uid,
        "generation": generation,
        "creationTimestamp": created,
        "annotations": notes,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    full_status = dict(status or {})
    if status_id is not None:
        full_status["remote"] = {**full_status.get("remote", {}), "id": status_id}
    return {
        "apiVersion": "syncjob.dev/v1alpha1",
        "kind": "SyncJob",
        "metadata": meta,
        "spec": TWINMAKER_SPEC if spec is None else spec,
        **({"status": full_status} if full_status else {}),
    }


# Observations and a clock the status and handler tables share.
NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
ACTIVE = Observation(exists=True, remote_id="arn:x", state="ACTIVE", ready=True)
CREATING = Observation(exists=True, remote_id="arn:x", state="CREATING", settled=False)
FAILED = Observation(
    exists=True,
    remote_id="arn:x",
    state="ERROR",
    failed=True,
    error_code="SYNC_CREATING_ERROR",
    error_message="boom",
)
