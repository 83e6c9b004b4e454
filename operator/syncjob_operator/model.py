"""Typed views of a SyncJob: the spec as the user wrote it and the identity of the object.

Parsing happens once, at the kopf edge; everything behind it works on these frozen models.
Field names follow Python, aliases follow the CRD.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ProviderName = Literal["AWSIoTTwinMaker", "Truto"]


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class SecretKeyRef(_Spec):
    name: str
    key: str


class AwsCredentialsRef(_Spec):
    name: str
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    session_token_key: str | None = None


class AssumeRoleSpec(_Spec):
    role_arn: str
    external_id: str | None = None
    session_name: str = "syncjob-operator"


class TwinMakerSpec(_Spec):
    region: str
    workspace_id: str
    sync_source: str
    sync_role: str
    tags: dict[str, str] = Field(default_factory=dict)
    credentials_secret_ref: AwsCredentialsRef | None = None
    assume_role: AssumeRoleSpec | None = None
    endpoint_url: str | None = Field(default=None, alias="endpointURL")


class TrutoResource(_Spec):
    resource: str
    method: str
    id: str | None = None
    query: dict[str, Any] | None = None
    loop_on: str | None = None
    depends_on: str | None = None
    persist: bool | None = None


class TrutoSchedule(_Spec):
    cron_expression: str
    integrated_account_id: str
    args: dict[str, Any] = Field(default_factory=dict)


class TrutoRunRequest(_Spec):
    request_id: str
    integrated_account_id: str
    args: dict[str, Any] = Field(default_factory=dict)


class TrutoSpec(_Spec):
    integration_name: str
    args_schema: dict[str, Any]
    resources: tuple[TrutoResource, ...]
    token_secret_ref: SecretKeyRef
    base_url: str | None = Field(default=None, alias="baseURL")
    schedule: TrutoSchedule | None = None
    run: TrutoRunRequest | None = None


class SyncJobSpec(_Spec):
    deletion_policy: Literal["Delete", "Orphan"] = "Delete"
    management_policy: Literal["Full", "ObserveOnly"] = "Full"
    twinmaker: TwinMakerSpec | None = Field(default=None, alias="awsIoTTwinMaker")
    truto: TrutoSpec | None = None

    @property
    def provider(self) -> ProviderName:
        return "AWSIoTTwinMaker" if self.twinmaker is not None else "Truto"

    @property
    def observe_only(self) -> bool:
        """Mirror the remote job, never create, change, claim or delete it."""
        return self.management_policy == "ObserveOnly"

    @property
    def run_request(self) -> TrutoRunRequest | None:
        """The on-demand run the spec asks for, where the provider has runs (Truto)."""
        return self.truto.run if self.truto is not None else None

    def secret_names(self) -> set[str]:
        """The Secrets (in the SyncJob's namespace) this spec reads credentials from."""
        names = set()
        if self.twinmaker is not None and self.twinmaker.credentials_secret_ref is not None:
            names.add(self.twinmaker.credentials_secret_ref.name)
        if self.truto is not None:
            names.add(self.truto.token_secret_ref.name)
        return names

    def fingerprint(self) -> str:
        """Stable hash of the spec, to tell whether anything the user wrote has changed."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Metadata the operator keeps on each SyncJob. Annotations survive what status does not: a
# backup restore (status is not restored) and re-applying the object. Status survives
# `kubectl replace` of a manifest without them. Identity is read from either.
FINALIZER = "syncjob.dev/finalizer"
EXTERNAL_ID_ANNOTATION = "syncjob.dev/external-id"
CREATE_PENDING_ANNOTATION = "syncjob.dev/create-pending"
ADOPTION_POLICY_ANNOTATION = "syncjob.dev/adoption-policy"
# The on-demand run of spec.truto.run: "<requestId> pending <time>" just before the run is
# started (a crash guard, as create-pending), "<requestId> run <runId>" once it is.
RUN_ANNOTATION = "syncjob.dev/run-request"
# "true" stops every remote call for the SyncJob (Crossplane's crossplane.io/paused). Not under
# syncjob.dev/: kopf keeps its own state there and ignores changes to it, and pausing or resuming
# must reach a handler.
PAUSED_ANNOTATION = "reconcile.syncjob.dev/paused"
# What SyncJob.from_body reads of an object's metadata.
_READ_ANNOTATIONS = (
    EXTERNAL_ID_ANNOTATION,
    CREATE_PENDING_ANNOTATION,
    ADOPTION_POLICY_ANNOTATION,
    RUN_ANNOTATION,
    PAUSED_ANNOTATION,
)
_READ_METADATA = (
    "namespace",
    "name",
    "uid",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "resourceVersion",
)
_MAX_OWNER_VALUE = 256  # the longest tag value TwinMaker accepts


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 time as Kubernetes, kopf and the providers write it; UTC where it names no
    zone. Raises ValueError."""
    when = datetime.datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def owner_value(namespace: str, name: str) -> str:
    """How a remote job names the SyncJob that owns it: "namespace/name", stable across backup
    restores and re-creation (a uid is not), hashed when too long for a tag value."""
    value = f"{namespace}/{name}"
    if len(value) <= _MAX_OWNER_VALUE:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class PendingCreate:
    """Written before a remote create: when it started and a hash of the content it sent, so an
    interrupted create's job is found again even if the spec changed meanwhile."""

    started_at: datetime.datetime
    content_hash: str

    def encode(self) -> str:
        started = self.started_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
        return f"{started} {self.content_hash}"

    @classmethod
    def decode(cls, text: str | None) -> PendingCreate | None:
        """None for an absent or unreadable marker (a hand-edited one counts as absent)."""
        started, _, content_hash = (text or "").partition(" ")
        if not content_hash:
            return None
        try:
            return cls(started_at=parse_time(started), content_hash=content_hash)
        except ValueError:
            return None


@dataclass(frozen=True)
class RunMark:
    """Which run request this SyncJob has started (`run_id`), or may have (`since`)."""

    request_id: str
    run_id: str | None = None
    since: datetime.datetime | None = None

    def encode(self) -> str:
        if self.run_id is not None:
            return f"{self.request_id} run {self.run_id}"
        assert self.since is not None
        started = self.since.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
        return f"{self.request_id} pending {started}"

    @classmethod
    def decode(cls, text: str | None) -> RunMark | None:
        """None for an absent or unreadable mark."""
        parts = (text or "").split(" ")
        if len(parts) != 3:
            return None
        request_id, kind, value = parts
        if kind == "run":
            return cls(request_id, run_id=value)
        if kind != "pending":
            return None
        try:
            return cls(request_id, since=parse_time(value))
        except ValueError:
            return None


@dataclass(frozen=True)
class SyncJob:
    """One SyncJob as the reconciler sees it: identity, spec, and what the object remembers."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: SyncJobSpec
    external_id: str | None = None  # the annotation: written by us, or by a user adopting a job
    status_id: str | None = None  # status.remote.id
    remote_schedule_id: str | None = None
    pending_create: PendingCreate | None = None
    adopt: bool = False  # the user asked to adopt an existing, unowned remote job
    created_at: str = ""  # metadata.creationTimestamp: the older of two claimants wins
    deleting: bool = False
    paused: bool = False  # the pause annotation: no remote call until it goes
    run_mark: RunMark | None = None  # the on-demand run started (or maybe started) last
    resource_version: str = ""  # of the body read: the crash guard's write is conditional on it

    @property
    def remote_id(self) -> str | None:
        """The remote job this SyncJob manages, as far as the object itself records it."""
        return self.external_id or self.status_id

    @property
    def owner(self) -> str:
        return owner_value(self.namespace, self.name)

    @property
    def run_outstanding(self) -> bool:
        """spec.truto.run names a run this SyncJob has not recorded as started."""
        request = self.spec.run_request
        if request is None:
            return False
        mark = self.run_mark
        return mark is None or mark.run_id is None or mark.request_id != request.request_id

    def with_remote_id(self, remote_id: str | None) -> SyncJob:
        """This job once its remote identity is recorded (no create is pending any more)."""
        if remote_id is None:
            return self
        return dataclasses.replace(
            self, external_id=remote_id, status_id=remote_id, pending_create=None
        )

    @staticmethod
    def essentials(body: Mapping[str, Any]) -> dict[str, Any]:
        """The parts of `body` that from_body reads, and its status: from_body gives the same
        SyncJob from them. Without managedFields and kopf's annotations, a fraction of it."""
        meta = body["metadata"]
        annotations = meta.get("annotations") or {}
        kept = {key: meta[key] for key in _READ_METADATA if key in meta}
        kept["annotations"] = {k: annotations[k] for k in _READ_ANNOTATIONS if k in annotations}
        return {
            "metadata": kept,
            "spec": body.get("spec") or {},
            "status": body.get("status") or {},
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SyncJob:
        """Raises pydantic.ValidationError if the spec does not match the model."""
        meta, status = body["metadata"], body.get("status") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 1)),
            spec=SyncJobSpec.model_validate(body.get("spec") or {}),
            external_id=annotations.get(EXTERNAL_ID_ANNOTATION) or None,
            status_id=(status.get("remote") or {}).get("id"),
            remote_schedule_id=(status.get("remote") or {}).get("scheduleId"),
            pending_create=PendingCreate.decode(annotations.get(CREATE_PENDING_ANNOTATION)),
            adopt=annotations.get(ADOPTION_POLICY_ANNOTATION) == "adopt",
            created_at=str(meta.get("creationTimestamp") or ""),
            deleting=bool(meta.get("deletionTimestamp")),
            paused=annotations.get(PAUSED_ANNOTATION) == "true",
            run_mark=RunMark.decode(annotations.get(RUN_ANNOTATION)),
            resource_version=str(meta.get("resourceVersion") or ""),
        )


def may_hold_remote_job(body: Mapping[str, Any]) -> bool:
    """Whether deleting this SyncJob `body` may have to delete a remote job: it records an
    identity, or a create may have been sent for it, and it is not ObserveOnly (which never
    deletes). Read from the body without parsing the spec: it is asked at every watch event."""
    annotations = body["metadata"].get("annotations") or {}
    remote = (body.get("status") or {}).get("remote") or {}
    if (body.get("spec") or {}).get("managementPolicy") == "ObserveOnly":
        return False
    return bool(
        annotations.get(EXTERNAL_ID_ANNOTATION)
        or annotations.get(CREATE_PENDING_ANNOTATION)
        or remote.get("id")
    )
