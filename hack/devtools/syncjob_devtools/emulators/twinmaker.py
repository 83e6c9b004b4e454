"""Local emulator of the AWS IoT TwinMaker sync-job API (rest-json, 2021-11-29).

Serves the sync-job, tagging and workspace operations at the paths, with the
members, constraints and error statuses of botocore's own service model (see
``restjson.py``). Sync jobs move CREATING -> INITIALIZING -> ACTIVE (or ERROR
when told to) and DELETING -> gone, one ``transition_seconds`` per step. States
are computed from timestamps on read, so nothing runs in the background and a
persisted job carries on where it was after a restart.

boto3 prefixes the host with ``api.`` for these operations (the model's
``hostPrefix``); point clients at the emulator with
``Config(inject_host_prefix=False)`` or ``AWS_DISABLE_HOST_PREFIX_INJECTION=true``.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from syncjob_devtools.emulators.base import (
    ADMIN_PREFIX,
    EXCEPTION_HANDLERS,
    AdminBodyError,
    EmulatorCore,
    admin_error,
    parse_admin_body,
)
from syncjob_devtools.emulators.faults import FaultRule, InjectedError
from syncjob_devtools.emulators.paging import InvalidPageToken, paginate
from syncjob_devtools.emulators.persistence import JsonStateFile
from syncjob_devtools.emulators.restjson import (
    AwsError,
    OperationBinding,
    RouteOnRawPath,
    enum_values,
    error_code_for_status,
    load_service_model,
    model_error_status,
    uri_labels,
)
from syncjob_devtools.emulators.sigv4 import (
    DEFAULT_AWS_CREDENTIALS,
    CredentialStore,
    KnownCredentials,
)
from syncjob_devtools.emulators.sts import (
    STS_SERVICE,
    STS_VERSION,
    StsError,
    assume_role,
    error_response,
    ok_response,
)
from syncjob_devtools.emulators.throttling import DEFAULT_REQUEST_RATES, RequestRate, TokenBuckets

SERVICE = "iottwinmaker"
SYNC_JOB_OPERATIONS = (
    "CreateSyncJob",
    "GetSyncJob",
    "DeleteSyncJob",
    "ListSyncJobs",
    "ListSyncResources",
)
TAG_OPERATIONS = ("TagResource", "UntagResource", "ListTagsForResource")
WORKSPACE_OPERATIONS = (
    "CreateWorkspace",
    "GetWorkspace",
    "UpdateWorkspace",
    "DeleteWorkspace",
    "ListWorkspaces",
)
# The Resource Groups Tagging API (JSON 1.1, one POST / per call named by X-Amz-Target), as far
# as reading TwinMaker resources' tags in bulk needs it.
TAGGING_SERVICE = "tagging"
TAGGING_TARGET_PREFIX = "ResourceGroupsTaggingAPI_20170126."
TAGGING_OPERATIONS = ("GetResources",)
MODEL_OPERATIONS = SYNC_JOB_OPERATIONS + TAG_OPERATIONS + WORKSPACE_OPERATIONS
STS_OPERATIONS = ("AssumeRole",)
SERVED_OPERATIONS = MODEL_OPERATIONS + TAGGING_OPERATIONS + STS_OPERATIONS
UNKNOWN_OPERATION = "UnknownOperation"

# Page sizes the model documents for each list call (its MaxResults shape says 0-200).
DEFAULT_PAGE_SIZE = {
    "ListSyncJobs": 50,
    "ListSyncResources": 50,
    "ListWorkspaces": 25,
    "ListTagsForResource": 25,
}
MAX_TAGS = 50
# Synthesized SITEWISE resources per job: asset models and assets.
SITEWISE_ASSET_MODELS = 2
SITEWISE_ASSETS = 5

SyncJobState = Literal["CREATING", "INITIALIZING", "ACTIVE", "DELETING", "ERROR"]
Handler = Callable[[dict[str, Any], float], dict[str, Any]]

_ARN_RESOURCE = re.compile(
    r"^arn:[^:]+:iottwinmaker:[^:]*:\d{12}:workspace/([^/]+)(?:/sync-job/([^/]+))?$"
)
_ROLE_ACCOUNT = re.compile(r"^arn:[^:]+:iam::(\d{12}):")


class TwinMakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str = Field(default="123456789012", pattern=r"^\d{12}$")
    # The endpoint is regional, as AWS's are: requests signed for another region fail.
    region: str = "us-east-1"
    transition_seconds: float = Field(default=1.0, ge=0)
    persist_path: Path | None = None
    # The real service accepts only SITEWISE; tests may add sources to get several
    # jobs into one workspace (e.g. to page through ListSyncJobs).
    sync_sources: frozenset[str] = frozenset({"SITEWISE"})
    max_workspaces: int = Field(default=1000, ge=1)
    # STS AssumeRole: roles (by ARN) that demand an external id, and the id they demand.
    role_external_ids: dict[str, str] = Field(default_factory=dict)
    # Access key id -> secret access key: the static keys requests may be signed with (the
    # session credentials its STS issues are accepted too, until they expire).
    aws_credentials: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_AWS_CREDENTIALS))
    # Per-account, per-operation request rates (token buckets), enforced when throttling is on:
    # calls beyond them get ThrottlingException (429). Off by default: the suite runs faster.
    throttling: bool = False
    request_rates: dict[str, RequestRate] = Field(
        default_factory=lambda: dict(DEFAULT_REQUEST_RATES)
    )

    @model_validator(mode="after")
    def _rates_name_operations(self) -> TwinMakerConfig:
        unknown = sorted(set(self.request_rates) - set(MODEL_OPERATIONS))
        if unknown:
            raise ValueError(f"request_rates for operations not served: {unknown}")
        return self


class Transition(BaseModel):
    at: float
    state: SyncJobState
    code: str | None = None
    message: str | None = None


class ResourceErrors(BaseModel):
    """The first `count` resources of an ACTIVE job report this error (ListSyncResources)."""

    count: int
    code: str
    message: str


class SyncJobRecord(BaseModel):
    workspace_id: str
    sync_source: str
    sync_role: str
    arn: str
    created: float
    # Sorted by time; the job's state at t is the last transition at or before t.
    transitions: list[Transition]
    gone_at: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    resource_errors: ResourceErrors | None = None

    def current(self, now: float) -> Transition:
        latest = self.transitions[0]
        for transition in self.transitions:
            if transition.at > now:
                break
            latest = transition
        return latest


class WorkspaceRecord(BaseModel):
    workspace_id: str
    arn: str
    created: float
    updated: float
    description: str | None = None
    role: str | None = None
    s3_location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class SyncJobOutcome(BaseModel):
    state: Literal["ERROR", "ACTIVE"]
    code: str | None = None
    message: str | None = None


class TwinMakerState(BaseModel):
    workspaces: dict[str, WorkspaceRecord] = Field(default_factory=dict)
    jobs: dict[str, SyncJobRecord] = Field(default_factory=dict)  # key: "<workspaceId>/<source>"
    # Outcomes for jobs not created yet; each is used by the next job with that key.
    pending_outcomes: dict[str, SyncJobOutcome] = Field(default_factory=dict)


class SyncJobOutcomeRequest(BaseModel):
    """Body of ``POST /_emulator/sync-job-outcome``: how an existing or future job ends."""

    model_config = ConfigDict(extra="forbid")

    workspaceId: str = Field(min_length=1)
    syncSource: str = Field(default="SITEWISE", min_length=1)
    state: Literal["ERROR", "ACTIVE"] = "ERROR"
    code: str | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _code_matches_state(self) -> SyncJobOutcomeRequest:
        codes = enum_values(load_service_model(SERVICE), "ErrorCode")
        if self.state == "ERROR" and self.code not in codes:
            raise ValueError(f"an ERROR outcome needs a code, one of {codes}")
        if self.state == "ACTIVE" and (self.code or self.message):
            raise ValueError("an ACTIVE outcome takes no code or message")
        return self


class SyncResourceErrorsRequest(BaseModel):
    """Body of ``POST /_emulator/sync-resource-errors``: how many of an existing job's
    resources are in ERROR while it is ACTIVE (0 clears)."""

    model_config = ConfigDict(extra="forbid")

    workspaceId: str = Field(min_length=1)
    syncSource: str = Field(default="SITEWISE", min_length=1)
    count: int = Field(ge=0)
    code: str = "SYNC_PROCESSING_ERROR"
    message: str = "Emulated resource error"

    @model_validator(mode="after")
    def _known_code(self) -> SyncResourceErrorsRequest:
        codes = enum_values(load_service_model(SERVICE), "ErrorCode")
        if self.code not in codes:
            raise ValueError(f"code must be one of {codes}")
        return self


def job_key(workspace_id: str, sync_source: str) -> str:
    return f"{workspace_id}/{sync_source}"


def _status(transition: Transition) -> dict[str, Any]:
    status: dict[str, Any] = {"state": transition.state}
    if transition.code is not None:
        status["error"] = {"code": transition.code, "message": transition.message or ""}
    return status


def _aws_error(injected: InjectedError) -> AwsError:
    assert injected.code is not None  # _complete_fault filled it in
    return AwsError(injected.code, injected.message or "Injected fault", injected.status)


def _sts_error(injected: InjectedError) -> StsError:
    assert injected.code is not None  # _complete_fault filled it in
    return StsError(injected.code, injected.message or "Injected fault", injected.status or 400)


def _without_none(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


class TwinMakerEmulator:
    def __init__(self, config: TwinMakerConfig) -> None:
        self.config = config
        self.model = load_service_model(SERVICE)
        self._file = (
            JsonStateFile(config.persist_path, TwinMakerState) if config.persist_path else None
        )
        self.state = (self._file.load() if self._file else None) or TwinMakerState()
        self._next_purge = min(
            (job.gone_at for job in self.state.jobs.values() if job.gone_at is not None),
            default=float("inf"),
        )
        self.core = EmulatorCore(reset_state=self._reset, complete_fault=self._complete_fault)
        self.credentials = CredentialStore(config.aws_credentials)
        self._buckets = TokenBuckets(config.request_rates) if config.throttling else None
        self.bindings = {
            name: OperationBinding(self.model.operation_model(name)) for name in MODEL_OPERATIONS
        }
        self._handlers: dict[str, Handler] = {
            "CreateSyncJob": self._create_sync_job,
            "GetSyncJob": self._get_sync_job,
            "DeleteSyncJob": self._delete_sync_job,
            "ListSyncJobs": self._list_sync_jobs,
            "ListSyncResources": self._list_sync_resources,
            "TagResource": self._tag_resource,
            "UntagResource": self._untag_resource,
            "ListTagsForResource": self._list_tags_for_resource,
            "CreateWorkspace": self._create_workspace,
            "GetWorkspace": self._get_workspace,
            "UpdateWorkspace": self._update_workspace,
            "DeleteWorkspace": self._delete_workspace,
            "ListWorkspaces": self._list_workspaces,
        }

    # -- wiring ---------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        # API routes first: Starlette tries routes in order and these are the hot ones.
        return [
            *(Route(b.path, self._endpoint(b), methods=[b.method]) for b in self.bindings.values()),
            *self.core.admin_routes(),
            Route(f"{ADMIN_PREFIX}/sync-job-outcome", self._admin_outcome, methods=["POST"]),
            Route(
                f"{ADMIN_PREFIX}/sync-resource-errors",
                self._admin_resource_errors,
                methods=["POST"],
            ),
            Route(
                f"{ADMIN_PREFIX}/sync-jobs/{{workspaceId}}/{{syncSource}}",
                self._admin_remove_job,
                methods=["DELETE"],
            ),
            Route(f"{ADMIN_PREFIX}/credentials", self._admin_credentials, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/credentials", self._admin_add_credentials, methods=["POST"]),
            Route(
                f"{ADMIN_PREFIX}/credentials/{{access_key_id}}",
                self._admin_remove_credentials,
                methods=["DELETE"],
            ),
            # Query-protocol STS and JSON-1.1 tagging API share POST /, as AWS's endpoints would
            # if they were one: the X-Amz-Target header names a tagging call.
            Route("/", self._root_post, methods=["POST"]),
            # Anything else is counted and answered the way AWS answers an unknown path.
            Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def _endpoint(self, binding: OperationBinding) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(binding, request)

        return endpoint

    async def _serve(self, binding: OperationBinding, request: Request) -> Response:
        body = await request.body()
        now = round(time.time(), 3)  # AWS timestamps carry milliseconds
        self._purge(now)
        labels = uri_labels(request.path_params)
        obj = self._object_key(labels, request, body)
        self.core.counters.record(binding.name, obj)
        try:
            account = await self._authenticate(request, binding.name, obj)
            if self._buckets is not None and not self._buckets.take(account, binding.name, now):
                self.core.counters.record_throttled(binding.name)
                raise AwsError("ThrottlingException", "Rate exceeded")
            injection = await self.core.faults.inject(binding.name)
            injection.fail_before(_aws_error)
            params = binding.parse(labels, request.query_params, body)
            result = self._handlers[binding.name](params, now)
            await injection.fail_after(_aws_error)
        except AwsError as exc:
            return self._error(exc)
        return JSONResponse(result, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _root_post(self, request: Request) -> Response:
        if "x-amz-target" in request.headers:
            return await self._tagging_api(request)
        return await self._sts_api(request)

    async def _sts_api(self, request: Request) -> Response:
        """STS AssumeRole (sts.py), for SyncJobs that assume a role in another account."""
        # A urlencoded body (starlette's form parser would need python-multipart).
        params = dict(urllib.parse.parse_qsl((await request.body()).decode()))
        action = params.get("Action", "")
        operation = action if action in STS_OPERATIONS else f"sts:{action}"
        self.core.counters.record(operation)
        try:
            await self._authenticate(request, operation, service=STS_SERVICE)
            if action not in STS_OPERATIONS or params.get("Version") != STS_VERSION:
                raise StsError("InvalidAction", f"Could not find operation {action}")
            injection = await self.core.faults.inject(action)
            injection.fail_before(_sts_error)
            assumed = assume_role(
                params,
                caller=f"arn:aws:iam::{self.config.account_id}:user/syncjob-operator",
                external_ids=self.config.role_external_ids,
                now=datetime.datetime.now(datetime.UTC),
            )
            self.credentials.add(assumed.credentials)
            await injection.fail_after(_sts_error)
        except AwsError as exc:  # the SigV4 check speaks AWS's common codes
            return error_response(StsError(exc.code, exc.message, exc.status or 403))
        except StsError as exc:
            return error_response(exc)
        return ok_response(assumed.xml())

    async def _tagging_api(self, request: Request) -> Response:
        """The Resource Groups Tagging API's GetResources over this emulator's resources."""
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(TAGGING_TARGET_PREFIX)
        operation = operation if operation in TAGGING_OPERATIONS else target
        self.core.counters.record(operation)
        try:
            await self._authenticate(request, operation, service=TAGGING_SERVICE)
            if operation == target:
                raise AwsError("UnknownOperationException", f"Unknown operation {target}")
            injection = await self.core.faults.inject(operation)
            injection.fail_before(_aws_error)
            result = self._get_resources(json.loads(await request.body() or b"{}"))
            await injection.fail_after(_aws_error)
        except AwsError as exc:
            headers = {"x-amzn-RequestId": str(uuid.uuid4())}
            body = {"__type": exc.code, "Message": exc.message}
            status = exc.status or model_error_status(self.model, exc.code) or 400
            return JSONResponse(body, status_code=status, headers=headers)
        return JSONResponse(
            result,
            media_type="application/x-amz-json-1.1",
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _get_resources(self, params: dict[str, Any]) -> dict[str, Any]:
        per_page = params.get("ResourcesPerPage", 50)
        if not isinstance(per_page, int) or not 1 <= per_page <= 100:
            raise AwsError("InvalidParameterException", "ResourcesPerPage must be 1 to 100")
        records: list[WorkspaceRecord | SyncJobRecord] = [
            *self.state.workspaces.values(),
            *self.state.jobs.values(),
        ]
        found = [
            record
            for record in records
            if record.tags
            and _matches_type(record.arn, params.get("ResourceTypeFilters") or [])
            and all(_matches_tag(record.tags, f) for f in params.get("TagFilters") or [])
        ]
        found.sort(key=lambda r: r.arn)
        try:
            page, token = paginate(
                found, lambda r: r.arn, per_page, params.get("PaginationToken") or None
            )
        except InvalidPageToken as exc:
            raise AwsError("InvalidParameterException", "Invalid PaginationToken") from exc
        mappings = [
            {"ResourceARN": r.arn, "Tags": [{"Key": k, "Value": v} for k, v in r.tags.items()]}
            for r in page
        ]
        return {"PaginationToken": token or "", "ResourceTagMappingList": mappings}

    async def _unknown(self, request: Request) -> Response:
        self.core.counters.record(UNKNOWN_OPERATION)
        try:
            await self._authenticate(request, UNKNOWN_OPERATION)
        except AwsError as exc:
            return self._error(exc)
        return self._error(AwsError("UnknownOperationException", "Unknown operation"))

    def _error(self, exc: AwsError) -> Response:
        status = exc.status or model_error_status(self.model, exc.code) or 400
        headers = {"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": str(uuid.uuid4())}
        return JSONResponse({"message": exc.message}, status_code=status, headers=headers)

    async def _authenticate(
        self, request: Request, operation: str, obj: str | None = None, service: str = SERVICE
    ) -> str:
        """Reject requests not SigV4-signed for this service and region by a known key (see
        ``sigv4.py``); count the call against the key that signed it. Returns the account the
        key belongs to: an assumed role's, else this emulator's."""
        signer = await self.credentials.authenticate(
            request, service=service, region=self.config.region, now=time.time()
        )
        self.core.counters.record_signer(signer.access_key_id, operation, obj)
        role_account = _ROLE_ACCOUNT.match(signer.role_arn or "")
        return role_account[1] if role_account else self.config.account_id

    def _object_key(self, labels: dict[str, str], request: Request, body: bytes) -> str | None:
        """``<workspaceId>/<syncSource>`` for job calls, ``<workspaceId>`` for workspace calls."""
        workspace = labels.get("workspaceId") or request.query_params.get("workspace")
        source = labels.get("syncSource")
        if source is not None:
            if workspace is None:
                jobs = self._jobs_syncing(source)
                workspace = jobs[0].workspace_id if len(jobs) == 1 else "*"
            return job_key(workspace, source)
        if workspace is not None:
            as_arn = _ARN_RESOURCE.match(workspace)  # GetWorkspace also takes the ARN
            return as_arn[1] if as_arn else workspace
        arn = request.query_params.get("resourceARN")
        if arn is None and body:
            match = re.search(rb'"resourceARN"\s*:\s*"([^"]+)"', body)
            arn = match.group(1).decode() if match else None
        parsed = _ARN_RESOURCE.match(arn or "")
        if parsed is None:
            return None
        return job_key(parsed[1], parsed[2]) if parsed[2] else parsed[1]

    def _complete_fault(self, rule: FaultRule) -> FaultRule:
        if rule.operation not in (*SERVED_OPERATIONS, "*"):
            raise ValueError(f"unknown operation {rule.operation!r}; served: {SERVED_OPERATIONS}")
        if not rule.has_error:
            return rule
        operation = None if rule.operation == "*" else rule.operation
        status = rule.status
        if status is None:
            assert rule.code is not None
            status = model_error_status(self.model, rule.code)
            if status is None:
                raise ValueError(f"{rule.code} is not in the model; give its status too")
        code = rule.code or error_code_for_status(self.model, operation, status)
        return rule.model_copy(update={"status": status, "code": code})

    # -- state ----------------------------------------------------------------

    def _save(self) -> None:
        if self._file is not None:
            self._file.save(self.state)

    def _reset(self) -> None:
        self.state = TwinMakerState()
        if self._buckets is not None:
            self._buckets.clear()
        self._next_purge = float("inf")
        self._save()

    def _purge(self, now: float) -> None:
        """Forget jobs whose deletion has finished (cheap unless one is due)."""
        if now < self._next_purge:
            return
        self.state.jobs = {
            key: job
            for key, job in self.state.jobs.items()
            if job.gone_at is None or job.gone_at > now
        }
        self._next_purge = min(
            (job.gone_at for job in self.state.jobs.values() if job.gone_at is not None),
            default=float("inf"),
        )
        self._save()

    def _arn(self, resource: str) -> str:
        return f"arn:aws:iottwinmaker:{self.config.region}:{self.config.account_id}:{resource}"

    def _workspace(self, workspace_id: str) -> WorkspaceRecord:
        parsed = _ARN_RESOURCE.match(workspace_id)  # GetWorkspace takes an id or an ARN
        workspace = self.state.workspaces.get(parsed[1] if parsed else workspace_id)
        if workspace is None:
            raise AwsError("ResourceNotFoundException", f"Workspace {workspace_id} not found")
        return workspace

    def _jobs_syncing(self, source: str) -> list[SyncJobRecord]:
        return [job for job in self.state.jobs.values() if job.sync_source == source]

    def _job(self, workspace_id: str | None, source: str) -> SyncJobRecord:
        if workspace_id is None:
            # GetSyncJob's workspace is optional in the model; without it the source
            # must name exactly one job.
            matches = self._jobs_syncing(source)
            if len(matches) > 1:
                raise AwsError(
                    "ValidationException",
                    "workspace is required: several workspaces sync " + source,
                )
            job = matches[0] if matches else None
        else:
            job = self.state.jobs.get(job_key(workspace_id, source))
        if job is None:
            where = f" in workspace {workspace_id}" if workspace_id else ""
            raise AwsError("ResourceNotFoundException", f"Sync job {source}{where} not found")
        return job

    def _tagged(self, arn: str) -> WorkspaceRecord | SyncJobRecord:
        # Found from the ARN, never by a scan: a call must not slow with the account's size.
        parsed = _ARN_RESOURCE.match(arn)
        record: WorkspaceRecord | SyncJobRecord | None = None
        if parsed and parsed[2] is None:
            record = self.state.workspaces.get(parsed[1])
        elif parsed:
            record = self.state.jobs.get(job_key(parsed[1], parsed[2]))
        if record is None or record.arn != arn:
            raise AwsError("ResourceNotFoundException", f"Resource {arn} not found")
        return record

    def _page(
        self, operation: str, params: dict[str, Any], items: list[Any], key: Callable[[Any], str]
    ) -> tuple[list[Any], dict[str, Any]]:
        # maxResults=0 is valid in the model; treat it as "the default", not as an
        # empty page, so a paging loop still makes progress.
        limit = params.get("maxResults") or DEFAULT_PAGE_SIZE[operation]
        try:
            page, token = paginate(items, key, limit, params.get("nextToken"))
        except InvalidPageToken as exc:
            raise AwsError("ValidationException", "Invalid nextToken") from exc
        return page, _without_none(nextToken=token)

    # -- workspaces -----------------------------------------------------------

    def _create_workspace(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspace_id = params["workspaceId"]
        if workspace_id in self.state.workspaces:
            raise AwsError("ConflictException", f"Workspace {workspace_id} already exists")
        if len(self.state.workspaces) >= self.config.max_workspaces:
            raise AwsError(
                "ServiceQuotaExceededException",
                f"Workspace quota of {self.config.max_workspaces} reached",
            )
        workspace = WorkspaceRecord(
            workspace_id=workspace_id,
            arn=self._arn(f"workspace/{workspace_id}"),
            created=now,
            updated=now,
            description=params.get("description"),
            role=params.get("role"),
            s3_location=params.get("s3Location"),
            tags=params.get("tags", {}),
        )
        self.state.workspaces[workspace_id] = workspace
        self._save()
        return {"arn": workspace.arn, "creationDateTime": now}

    def _workspace_summary(self, workspace: WorkspaceRecord) -> dict[str, Any]:
        return _without_none(
            workspaceId=workspace.workspace_id,
            arn=workspace.arn,
            description=workspace.description,
            creationDateTime=workspace.created,
            updateDateTime=workspace.updated,
        )

    def _get_workspace(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspace = self._workspace(params["workspaceId"])
        return self._workspace_summary(workspace) | _without_none(
            role=workspace.role, s3Location=workspace.s3_location
        )

    def _update_workspace(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspace = self._workspace(params["workspaceId"])
        for member, attribute in (
            ("description", "description"),
            ("role", "role"),
            ("s3Location", "s3_location"),
        ):
            if member in params:
                setattr(workspace, attribute, params[member])
        workspace.updated = now
        self._save()
        return {"updateDateTime": now}

    def _delete_workspace(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspace = self._workspace(params["workspaceId"])
        if any(job.workspace_id == workspace.workspace_id for job in self.state.jobs.values()):
            raise AwsError(
                "ValidationException",
                f"Workspace {workspace.workspace_id} still has sync jobs; delete them first",
            )
        del self.state.workspaces[workspace.workspace_id]
        self._save()
        return {"message": f"Workspace {workspace.workspace_id} deleted"}

    def _list_workspaces(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspaces = sorted(self.state.workspaces.values(), key=lambda w: w.workspace_id)
        page, token = self._page("ListWorkspaces", params, workspaces, lambda w: w.workspace_id)
        return {"workspaceSummaries": [self._workspace_summary(w) for w in page], **token}

    # -- sync jobs ------------------------------------------------------------

    def _create_sync_job(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspace_id, source, role = params["workspaceId"], params["syncSource"], params["syncRole"]
        if source not in self.config.sync_sources:
            raise AwsError(
                "ValidationException",
                f"Unsupported syncSource {source}; supported: {sorted(self.config.sync_sources)}",
            )
        workspace = self._workspace(workspace_id)
        role_account = _ROLE_ACCOUNT.match(role)
        if role_account and role_account[1] != self.config.account_id:
            # iam:PassRole cannot hand over another account's role.
            raise AwsError(
                "AccessDeniedException",
                f"User: arn:aws:iam::{self.config.account_id}:user/emulator is not authorized to "
                f"perform: iam:PassRole on resource: {role}",
            )
        key = job_key(workspace.workspace_id, source)
        if key in self.state.jobs:
            raise AwsError(
                "ConflictException",
                f"A sync job for {source} already exists in workspace {workspace_id}",
            )
        step = self.config.transition_seconds
        outcome = self.state.pending_outcomes.pop(key, SyncJobOutcome(state="ACTIVE"))
        job = SyncJobRecord(
            workspace_id=workspace_id,
            sync_source=source,
            sync_role=role,
            arn=self._arn(f"workspace/{workspace_id}/sync-job/{source}"),
            created=now,
            transitions=[
                Transition(at=now, state="CREATING"),
                Transition(at=now + step, state="INITIALIZING"),
                Transition(at=now + 2 * step, **outcome.model_dump()),
            ],
            tags=params.get("tags", {}),
        )
        self.state.jobs[key] = job
        self._save()
        return {"arn": job.arn, "creationDateTime": now, "state": job.current(now).state}

    def _job_summary(self, job: SyncJobRecord, now: float) -> dict[str, Any]:
        current = job.current(now)
        return {
            "arn": job.arn,
            "workspaceId": job.workspace_id,
            "syncSource": job.sync_source,
            "status": _status(current),
            "creationDateTime": job.created,
            "updateDateTime": current.at,
        }

    def _get_sync_job(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self._job(params.get("workspaceId"), params["syncSource"])
        return self._job_summary(job, now) | {"syncRole": job.sync_role}

    def _delete_sync_job(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self._job(params["workspaceId"], params["syncSource"])
        if job.gone_at is None:
            job.transitions = [t for t in job.transitions if t.at <= now]
            job.transitions.append(Transition(at=now, state="DELETING"))
            job.gone_at = now + self.config.transition_seconds
            self._next_purge = min(self._next_purge, job.gone_at)
            self._save()
        return {"state": "DELETING"}

    def _list_sync_jobs(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        workspace = self._workspace(params["workspaceId"])
        # By key, one per source (create accepts only these): not a scan of every workspace's.
        keys = (job_key(workspace.workspace_id, s) for s in sorted(self.config.sync_sources))
        jobs = [job for key in keys if (job := self.state.jobs.get(key)) is not None]
        page, token = self._page("ListSyncJobs", params, jobs, lambda j: j.sync_source)
        return {"syncJobSummaries": [self._job_summary(j, now) for j in page], **token}

    def _list_sync_resources(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        job = self._job(params["workspaceId"], params["syncSource"])
        filters: list[dict[str, Any]] = params.get("filters", [])
        resources = [
            r
            for r in sitewise_resources(job, now)
            if all(
                (r["status"]["state"] if name == "state" else r[name]) == wanted
                for f in filters
                for name, wanted in f.items()
            )
        ]
        page, token = self._page(
            "ListSyncResources",
            params,
            resources,
            lambda r: f"{r['resourceType']}/{r['externalId']}",
        )
        return {"syncResources": page, **token}

    # -- tags -----------------------------------------------------------------

    def _tag_resource(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        record = self._tagged(params["resourceARN"])
        merged = record.tags | params["tags"]
        if len(merged) > MAX_TAGS:
            raise AwsError("TooManyTagsException", f"A resource can have at most {MAX_TAGS} tags")
        record.tags = merged
        self._save()
        return {}

    def _untag_resource(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        record = self._tagged(params["resourceARN"])
        record.tags = {k: v for k, v in record.tags.items() if k not in params["tagKeys"]}
        self._save()
        return {}

    def _list_tags_for_resource(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        record = self._tagged(params["resourceARN"])
        keys, token = self._page("ListTagsForResource", params, sorted(record.tags), lambda k: k)
        return {"tags": {k: record.tags[k] for k in keys}, **token}

    # -- admin ----------------------------------------------------------------

    async def _admin_outcome(self, request: Request) -> Response:
        try:
            outcome = await parse_admin_body(request, SyncJobOutcomeRequest)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        now = time.time()
        self._purge(now)
        final = SyncJobOutcome(
            state=outcome.state,
            code=outcome.code,
            message=outcome.message or (f"Emulated {outcome.code}" if outcome.code else None),
        )
        key = job_key(outcome.workspaceId, outcome.syncSource)
        job = self.state.jobs.get(key)
        if job is None:
            self.state.pending_outcomes[key] = final
            self._save()
            return JSONResponse({"applied": "next-create", "job": key})
        if job.gone_at is not None:
            return admin_error(f"sync job {key} is being deleted", 409)
        last = job.transitions[-1]
        if last.at > now:  # still on its way: end there instead of where it was going
            job.transitions[-1] = Transition(at=last.at, **final.model_dump())
        else:
            job.transitions.append(Transition(at=now, **final.model_dump()))
        self._save()
        return JSONResponse({"applied": "existing", "job": key})

    async def _admin_resource_errors(self, request: Request) -> Response:
        try:
            wanted = await parse_admin_body(request, SyncResourceErrorsRequest)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        key = job_key(wanted.workspaceId, wanted.syncSource)
        job = self.state.jobs.get(key)
        if job is None:
            return admin_error(f"no sync job {key}", 404)
        job.resource_errors = (
            ResourceErrors(count=wanted.count, code=wanted.code, message=wanted.message)
            if wanted.count
            else None
        )
        self._save()
        return JSONResponse({"job": key, "count": wanted.count})

    async def _admin_credentials(self, request: Request) -> Response:
        return JSONResponse([c.model_dump() for c in self.credentials.summaries()])

    async def _admin_add_credentials(self, request: Request) -> Response:
        try:
            credentials = await parse_admin_body(request, KnownCredentials)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        self.credentials.add(credentials)
        return JSONResponse({"access_key_id": credentials.access_key_id}, status_code=201)

    async def _admin_remove_credentials(self, request: Request) -> Response:
        """Revoke a key: requests signed with it are an UnrecognizedClientException from now on."""
        if not self.credentials.remove(request.path_params["access_key_id"]):
            return admin_error("no such access key", 404)
        return Response(status_code=204)

    async def _admin_remove_job(self, request: Request) -> Response:
        """Make a job vanish without the API, as if someone deleted it elsewhere long ago."""
        labels = uri_labels(request.path_params)
        key = job_key(labels["workspaceId"], labels["syncSource"])
        if self.state.jobs.pop(key, None) is None:
            return admin_error(f"no sync job {key}", 404)
        self._save()
        return Response(status_code=204)


def sitewise_resources(job: SyncJobRecord, now: float) -> list[dict[str, Any]]:
    """A few plausible SITEWISE resources: asset models become component types, assets entities."""
    current = job.current(now)
    if current.state == "CREATING":
        return []
    state = {
        "INITIALIZING": "INITIALIZING",
        "ACTIVE": "IN_SYNC",
        "ERROR": "ERROR",
        "DELETING": "DELETED",
    }
    status = _status(current) | {"state": state[current.state]}
    seed = uuid.uuid5(uuid.NAMESPACE_URL, job.arn)
    models = [str(uuid.uuid5(seed, f"asset-model-{i}")) for i in range(SITEWISE_ASSET_MODELS)]
    assets = [str(uuid.uuid5(seed, f"asset-{i}")) for i in range(SITEWISE_ASSETS)]
    resources = [
        {
            "resourceType": "COMPONENT_TYPE",
            "externalId": m,
            "resourceId": f"iotsitewise.assetmodel:{m}",
        }
        for m in models
    ] + [{"resourceType": "ENTITY", "externalId": a, "resourceId": a} for a in assets]
    listed = sorted(
        ({**r, "status": status, "updateDateTime": current.at} for r in resources),
        key=lambda r: f"{r['resourceType']}/{r['externalId']}",
    )
    errors = job.resource_errors if current.state == "ACTIVE" else None
    for resource in listed[: errors.count if errors else 0]:
        assert errors is not None
        resource["status"] = {
            "state": "ERROR",
            "error": {"code": errors.code, "message": errors.message},
        }
    return listed


def _matches_type(arn: str, filters: list[str]) -> bool:
    """ "service" or "service:type", the type being the ARN resource's first segment."""
    resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else ""
    kind = resource.split("/", 1)[0]
    return not filters or any(f in (SERVICE, f"{SERVICE}:{kind}") for f in filters)


def _matches_tag(tags: dict[str, str], tag_filter: dict[str, Any]) -> bool:
    key = tag_filter.get("Key")
    values = tag_filter.get("Values") or []
    return key in tags and (not values or tags[key] in values)


def create_app(config: TwinMakerConfig | None = None) -> Starlette:
    emulator = TwinMakerEmulator(config or TwinMakerConfig())
    app = Starlette(
        routes=emulator.routes(),
        middleware=[Middleware(RouteOnRawPath)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.emulator = emulator.core
    return app
