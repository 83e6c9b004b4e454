"""Typed views of a SyncJob: the spec as the user wrote it and the identity of the object.

Parsing happens once, at the kopf edge; everything behind it works on these frozen models.
Field names follow Python, aliases follow the CRD.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
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


class TwinMakerSpec(_Spec):
    region: str
    workspace_id: str
    sync_source: str
    sync_role: str
    tags: dict[str, str] = Field(default_factory=dict)
    credentials_secret_ref: AwsCredentialsRef | None = None
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


class TrutoSpec(_Spec):
    integration_name: str
    args_schema: dict[str, Any]
    resources: tuple[TrutoResource, ...]
    token_secret_ref: SecretKeyRef
    base_url: str | None = Field(default=None, alias="baseURL")
    schedule: TrutoSchedule | None = None


class SyncJobSpec(_Spec):
    deletion_policy: Literal["Delete", "Orphan"] = "Delete"
    twinmaker: TwinMakerSpec | None = Field(default=None, alias="awsIoTTwinMaker")
    truto: TrutoSpec | None = None

    @property
    def provider(self) -> ProviderName:
        return "AWSIoTTwinMaker" if self.twinmaker is not None else "Truto"

    def fingerprint(self) -> str:
        """Stable hash of the spec, to tell whether anything the user wrote has changed."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PendingCreate:
    started_at: datetime.datetime
    spec_hash: str


@dataclass(frozen=True)
class SyncJob:
    """One SyncJob as the reconciler sees it: identity, spec, and what status remembers."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: SyncJobSpec
    remote_id: str | None = None
    remote_schedule_id: str | None = None
    pending_create: PendingCreate | None = None
    deleting: bool = False

    def with_remote_id(self, remote_id: str | None) -> SyncJob:
        """This job once its remote identity is recorded (no create is pending any more)."""
        return dataclasses.replace(self, remote_id=remote_id or self.remote_id, pending_create=None)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> SyncJob:
        """Raises pydantic.ValidationError if the spec does not match the model."""
        meta, status = body["metadata"], body.get("status") or {}
        pending = status.get("pendingCreate")
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 1)),
            spec=SyncJobSpec.model_validate(body.get("spec") or {}),
            remote_id=(status.get("remote") or {}).get("id"),
            remote_schedule_id=(status.get("remote") or {}).get("scheduleId"),
            pending_create=PendingCreate(
                started_at=datetime.datetime.fromisoformat(pending["startedAt"]),
                spec_hash=pending.get("specHash", ""),
            )
            if pending and pending.get("startedAt")
            else None,
            deleting=bool(meta.get("deletionTimestamp")),
        )
