"""AWS IoT TwinMaker sync jobs through boto3.

A job is named by workspaceId + syncSource, so it is found again after any crash by name. The
owning SyncJob is tagged on the job at create (syncjob.dev/owner), so a ConflictException on
create, or a job found by name, is judged by its tag, never taken over. TwinMaker
has no update call; only tags change (TagResource / UntagResource). boto3 blocks, so every
call runs on a dedicated thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.session

from syncjob_operator.metrics import REMOTE_CALLS, count_failed_call
from syncjob_operator.model import ProviderName, SyncJob, TwinMakerSpec
from syncjob_operator.providers.base import (
    ABSENT,
    NAME_TAKEN,
    READ_TIMEOUT_SECONDS,
    Observation,
    ProviderError,
    ResourceError,
    SecretReader,
    SyncProgress,
)
from syncjob_operator.providers.listcache import SharedListCache

if TYPE_CHECKING:  # type stubs only: not installed in the image
    from mypy_boto3_iottwinmaker import IoTTwinMakerClient
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient

T = TypeVar("T")

_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "TooManyRequestsException",
        "Throttling",
        "ThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
    }
)
# The codes AWS services answer a call refused for its rate with (botocore's list, whatever the
# HTTP status: some answer 400).
_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
_SETTLED_STATES = frozenset({"ACTIVE", "ERROR"})
_LIST_PAGE_SIZE = 200
_TAG_PAGE_SIZE = 100  # GetResources' maximum
_RESOURCE_PAGE_SIZE = 200  # ListSyncResources' maximum
_PROGRESS_ERRORS = 5  # resource errors kept in status: the first few say what is wrong

# boto3 retries on its own would hide throttling from our backoff and metrics: one attempt,
# short timeouts, and the reconciler decides when to try again. Adaptive mode adds botocore's
# client-side rate limiter, which slows every request of a client once one is throttled; a
# client is shared by every SyncJob of one account (identity), region and endpoint, so they
# wait together instead of each being throttled in turn.
_BOTO_CONFIG = botocore.config.Config(
    retries={"total_max_attempts": 1, "mode": "adaptive"},
    connect_timeout=5,
    read_timeout=READ_TIMEOUT_SECONDS,
)


# Every AWS service this operator calls: TwinMaker, the tagging API, STS (assumed roles).
_SERVICES = frozenset({"iottwinmaker", "resourcegroupstaggingapi", "sts"})


class SharedDataLoader(botocore.loaders.Loader):
    """botocore's data files, parsed once for every session this operator builds.

    A botocore session parses its own copy otherwise: endpoints.json (every AWS service, 1.2 MB)
    and the service models cost about 16 MiB of RSS per session, and there is a session per
    client (region, endpoint, identity). Of endpoints.json only our services are kept."""

    _cache: dict[tuple[str, ...], Any]  # botocore's instance_cache store (untyped in the stubs)

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        # instance_cache (botocore.loaders) keeps each file under this key: the first load of
        # endpoints.json is replaced there by its pruned copy, which every session then gets.
        key = ("load_data_with_path", name)
        if name == "endpoints" and key not in self._cache:
            data, path = super().load_data_with_path(name)
            partitions = [
                {**p, "services": {k: v for k, v in p["services"].items() if k in _SERVICES}}
                for p in data["partitions"]
            ]
            self._cache[key] = ({**data, "partitions": partitions}, path)
        found: tuple[Any, str] = super().load_data_with_path(name)
        return found

    @classmethod
    def configured(cls) -> SharedDataLoader:
        """Searches where botocore's own loader would (the data_path setting, AWS_DATA_PATH)."""
        data_path = botocore.session.Session().get_config_variable("data_path")
        paths = [os.path.expanduser(p) for p in data_path.split(os.pathsep)] if data_path else None
        return cls(extra_search_paths=paths)


def _config(endpoint: str | None) -> botocore.config.Config:
    # An explicit endpoint (VPC endpoint, emulator) is the whole host: botocore would otherwise
    # prepend the model's "api." host prefix to it.
    return _BOTO_CONFIG.merge(botocore.config.Config(inject_host_prefix=endpoint is None))


def classify(error: Exception, operation: str) -> ProviderError:
    """Maps a botocore exception to a retryable or terminal ProviderError."""
    if isinstance(error, botocore.exceptions.ClientError):
        info = error.response.get("Error", {})
        code = info.get("Code", "Unknown")
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        retryable = code in _RETRYABLE_CODES or status >= 500 or status == 429
        return ProviderError(
            code,
            info.get("Message", str(error)),
            retryable=retryable,
            operation=operation,
            throttled=status == 429 or code in _THROTTLING_CODES,
        )
    if isinstance(
        error, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return ProviderError("CredentialsMissing", str(error), retryable=False, operation=operation)
    if isinstance(error, botocore.exceptions.ParamValidationError):
        return ProviderError(
            "ValidationException", str(error), retryable=False, operation=operation
        )
    if isinstance(error, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        # The request may have reached AWS before the connection failed.
        return ProviderError(
            "ConnectionError", str(error), retryable=True, operation=operation, answered=False
        )
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return ProviderError(type(error).__name__, str(error), retryable=True, operation=operation)
    raise error


OWNER_TAG = "syncjob.dev/owner"  # names the SyncJob that owns the job: "namespace/name"


@dataclass(frozen=True)
class TwinMakerBasis:
    """The tags a TwinMaker observation read: what update() diffs against."""

    tags: Mapping[str, str]


def _basis(observed: Observation) -> TwinMakerBasis:
    assert isinstance(observed.basis, TwinMakerBasis), "not a TwinMaker observation with tags"
    return observed.basis


def _observation(
    summary: dict[str, Any],
    job: SyncJob,
    *,
    tags: dict[str, str] | None,
    role: str | None = None,
) -> Observation:
    """`tags` None: not read, so neither ownership nor drift can be judged (fail closed)."""
    state = summary["status"]["state"]
    error = summary["status"].get("error") or {}
    drift: tuple[str, ...] = ()
    if tags is not None:
        to_tag, to_untag = tag_changes(desired_tags(job), tags)
        drift = tuple(f"tag {key}" for key in sorted({*to_tag, *to_untag}))
    spec = _spec(job)
    return Observation(
        exists=True,
        remote_id=summary["arn"],
        state=state,
        up_to_date=None if tags is None else not drift,
        drift=drift,
        ready=state == "ACTIVE",
        settled=state in _SETTLED_STATES,
        failed=state == "ERROR",
        error_code=error.get("code"),
        error_message=error.get("message"),
        created_at=summary.get("creationDateTime"),
        updated_at=summary.get("updateDateTime"),
        owner=None if tags is None else tags.get(OWNER_TAG),
        conflict=f"syncRole {role}" if role is not None and role != spec.sync_role else None,
        basis=None if tags is None else TwinMakerBasis(tags),
    )


def desired_tags(job: SyncJob) -> dict[str, str]:
    """The user's tags plus the ownership tag (the CRD keeps users off the syncjob.dev/ prefix)."""
    return {**_spec(job).tags, OWNER_TAG: job.owner}


def tag_changes(
    desired: dict[str, str], remote: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """What to tag and what to untag so that the remote tags equal the desired ones."""
    to_tag = {k: v for k, v in desired.items() if remote.get(k) != v}
    to_untag = sorted(k for k in remote if k not in desired)
    return to_tag, to_untag


class TwinMakerProvider:
    name: ProviderName = "AWSIoTTwinMaker"
    marks_owner = True
    found_by_spec = True  # workspaceId + syncSource

    def __init__(
        self,
        secrets: SecretReader,
        executor: Executor,
        *,
        default_endpoint_url: str | None = None,
        progress_pages: int = 1,
    ) -> None:
        """`progress_pages`: ListSyncResources pages read per look at an ACTIVE job (0: none)."""
        self._secrets = secrets
        self._progress_pages = progress_pages
        self._executor = executor
        self._default_endpoint_url = default_endpoint_url
        self._loader = SharedDataLoader.configured()
        self._clients: dict[tuple[str, str | None, str], IoTTwinMakerClient] = {}
        self._tagging: dict[tuple[str, str | None, str], ResourceGroupsTaggingAPIClient] = {}
        # By identity (source credentials + role): credentials of an assumed role.
        self._assumed: dict[str, botocore.credentials.Credentials] = {}
        # By workspace: its sync jobs. By region, endpoint and identity: the owned jobs' tags.
        self._lists: SharedListCache[
            tuple[str, str | None, str, str], dict[str, dict[str, Any]]
        ] = SharedListCache()
        self._owned_tags: SharedListCache[
            tuple[str, str | None, str], dict[str, dict[str, str]]
        ] = SharedListCache()

    async def _client(self, job: SyncJob) -> tuple[IoTTwinMakerClient, str]:
        credentials, endpoint, identity = await self._identity(job)
        key = (_spec(job).region, endpoint, identity)
        client = self._clients.get(key)
        if client is None:
            session = self._session(_spec(job), credentials, endpoint, identity)
            client = session.client("iottwinmaker", endpoint_url=endpoint, config=_config(endpoint))
            self._clients[key] = client
        return client, identity

    async def _tagging_client(self, job: SyncJob) -> ResourceGroupsTaggingAPIClient:
        credentials, endpoint, identity = await self._identity(job)
        key = (_spec(job).region, endpoint, identity)
        client = self._tagging.get(key)
        if client is None:
            client = self._session(_spec(job), credentials, endpoint, identity).client(
                "resourcegroupstaggingapi", endpoint_url=endpoint, config=_config(endpoint)
            )
            self._tagging[key] = client
        return client

    def _session(
        self,
        spec: TwinMakerSpec,
        credentials: Mapping[str, str],
        endpoint: str | None,
        identity: str,
    ) -> boto3.session.Session:
        """A session with the job's credentials (its Secret's, or the default chain), or with
        the role it assumes from them: botocore's own assume-role credentials, fetched on first
        use and refreshed shortly before they expire, shared by every client and region of that
        identity, so one STS call serves a role per expiry window."""
        base = self._new_session()
        if credentials:
            base.set_credentials(
                credentials["aws_access_key_id"],
                credentials["aws_secret_access_key"],
                credentials.get("aws_session_token"),
            )
        if spec.assume_role is None:
            return boto3.session.Session(botocore_session=base, region_name=spec.region)
        assumed = self._assumed.get(identity)
        if assumed is None:
            assumed = _assume_role(base, spec, endpoint)
            self._assumed[identity] = assumed
        target = self._new_session()
        target.register_component(
            "credential_provider", botocore.credentials.CredentialResolver([_Provided(assumed)])
        )
        return boto3.session.Session(botocore_session=target, region_name=spec.region)

    def _new_session(self) -> botocore.session.Session:
        session = botocore.session.Session()
        session.register_component("data_loader", self._loader)
        return session

    async def _identity(self, job: SyncJob) -> tuple[dict[str, str], str | None, str]:
        """The job's credentials (empty: the default chain), endpoint, and a hash naming the
        identity. Clients are costly to build and thread-safe: one per region, endpoint and
        identity."""
        spec = _spec(job)
        endpoint = spec.endpoint_url or self._default_endpoint_url
        credentials: dict[str, str] = {}
        if spec.credentials_secret_ref is not None:
            ref = spec.credentials_secret_ref
            data, _ = await self._secrets.read(job.namespace, ref.name)
            keys = {
                "aws_access_key_id": ref.access_key_id_key,
                "aws_secret_access_key": ref.secret_access_key_key,
            }
            if ref.session_token_key:
                keys["aws_session_token"] = ref.session_token_key
            missing = [key for key in keys.values() if key not in data]
            if missing:
                raise ProviderError(
                    "SecretKeyNotFound",
                    f"Secret {job.namespace}/{ref.name} lacks key(s) {', '.join(missing)}",
                    retryable=False,
                )
            credentials = {arg: data[key] for arg, key in keys.items()}
        role = spec.assume_role.model_dump_json() if spec.assume_role else ""
        named = repr((sorted(credentials.items()), role))
        identity = hashlib.sha256(named.encode()).hexdigest()[:16]
        return credentials, endpoint, identity

    async def connect(self) -> None:
        """Nothing to open up front: a client is built per region, endpoint and identity on
        first use (credentials come from each SyncJob's Secret)."""

    async def aclose(self) -> None:
        clients = [*self._clients.values(), *self._tagging.values()]
        self._clients, self._tagging = {}, {}
        for client in clients:
            client.close()

    @staticmethod
    def _scope(spec: TwinMakerSpec, identity: str) -> tuple[str, str | None, str, str]:
        return (spec.region, spec.endpoint_url, identity, spec.workspace_id)

    async def _call(self, operation: str, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, call)
        except Exception as exc:
            error = classify(exc, operation)
            count_failed_call(self.name, error)
            raise error from exc
        REMOTE_CALLS.labels(self.name, operation, "ok").inc()
        return result

    async def scope(self, job: SyncJob) -> Hashable:
        spec = _spec(job)
        return (self.name, spec.region, spec.endpoint_url, spec.workspace_id)

    def fingerprint(self, job: SyncJob) -> str:
        return job.spec.fingerprint()

    async def find_created(self, job: SyncJob) -> list[Observation]:
        return []  # jobs are named by workspaceId + syncSource: observe finds them

    async def observe(
        self,
        job: SyncJob,
        *,
        max_age: float | None = None,
        content: bool = True,
        progress: bool = False,
    ) -> Observation:
        spec = _spec(job)
        client, identity = await self._client(job)
        if max_age is not None:
            observed = await self._observe_listed(job, client, identity, max_age, content=content)
        else:
            observed = await self._observe_read(job, client)
        return await self._with_progress(client, spec, observed) if progress else observed

    async def _observe_read(self, job: SyncJob, client: IoTTwinMakerClient) -> Observation:
        spec = _spec(job)
        try:
            found: dict[str, Any] = dict(
                await self._call(
                    "GetSyncJob",
                    lambda: client.get_sync_job(
                        syncSource=spec.sync_source, workspaceId=spec.workspace_id
                    ),
                )
            )
        except ProviderError as error:
            if error.code == "ResourceNotFoundException":
                return ABSENT
            raise
        tags = await self._tags(client, found["arn"])
        if tags is None:
            return ABSENT
        return _observation(found, job, tags=tags, role=found["syncRole"])

    async def _observe_listed(
        self,
        job: SyncJob,
        client: IoTTwinMakerClient,
        identity: str,
        max_age: float,
        *,
        content: bool,
    ) -> Observation:
        """From two lists: the workspace's sync jobs (ListSyncJobs) and the tags of every job
        the operator owns in the region (the Resource Groups Tagging API's GetResources)."""
        spec = _spec(job)
        jobs = await self._lists.get(
            self._scope(spec, identity),
            lambda: self._list_jobs(client, spec.workspace_id),
            max_age=max_age,
        )
        summary = jobs.get(spec.sync_source)
        if summary is None:
            return ABSENT
        if summary["arn"] != job.remote_id or not content:
            # Not recorded as ours, only a full read (role included) may judge it; or only its
            # state was asked for.
            return _observation(summary, job, tags=None)
        owned = await self._owned_tags.get(
            (spec.region, spec.endpoint_url, identity),
            lambda: self._list_owned_tags(job),
            max_age=max_age,
        )
        # Missing from the owner-tag listing: its owner tag is gone, and with it the knowledge
        # of its other tags (None: the caller confirms with a read of its own).
        return _observation(summary, job, tags=owned.get(summary["arn"]))

    async def _with_progress(
        self, client: IoTTwinMakerClient, spec: TwinMakerSpec, observed: Observation
    ) -> Observation:
        """An ACTIVE job's resources, counted by state from at most `progress_pages` pages of
        ListSyncResources: one call in the usual case, and none while the job is not ACTIVE."""
        if observed.state != "ACTIVE" or self._progress_pages <= 0:
            return observed
        counts: Counter[str] = Counter()
        errors: list[ResourceError] = []
        token: str | None = None
        for _ in range(self._progress_pages):
            page = await self._call(
                "ListSyncResources", functools.partial(_resources_page, client, spec, token)
            )
            for resource in page.get("syncResources", []):
                status = resource.get("status") or {}
                counts[status.get("state", "UNKNOWN")] += 1
                error = status.get("error")
                if error and len(errors) < _PROGRESS_ERRORS:
                    errors.append(
                        ResourceError(
                            resource_type=resource.get("resourceType", ""),
                            external_id=resource.get("externalId", ""),
                            code=error.get("code", ""),
                            message=error.get("message", ""),
                        )
                    )
            token = page.get("nextToken")
            if not token:
                break
        progress = SyncProgress(
            counts=tuple(sorted(counts.items())), complete=not token, errors=tuple(errors)
        )
        return dataclasses.replace(observed, progress=progress)

    async def _list_owned_tags(self, job: SyncJob) -> dict[str, dict[str, str]]:
        """Every TwinMaker resource in the region that carries an owner tag, with its tags."""
        tagging = await self._tagging_client(job)
        tags: dict[str, dict[str, str]] = {}
        token = ""
        while True:
            page = await self._call("GetResources", functools.partial(_owned_page, tagging, token))
            for mapping in page.get("ResourceTagMappingList", []):
                tags[mapping["ResourceARN"]] = {t["Key"]: t["Value"] for t in mapping["Tags"]}
            token = page.get("PaginationToken", "")
            if not token:
                return tags

    async def _tags(self, client: IoTTwinMakerClient, arn: str) -> dict[str, str] | None:
        """The job's tags; None when the job is gone since it was read (it was DELETING)."""
        try:
            listed = await self._call(
                "ListTagsForResource", lambda: client.list_tags_for_resource(resourceARN=arn)
            )
        except ProviderError as error:
            if error.code == "ResourceNotFoundException":
                return None
            raise
        return dict(listed.get("tags", {}))

    async def _list_jobs(
        self, client: IoTTwinMakerClient, workspace_id: str
    ) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page = await self._call(
                "ListSyncJobs", functools.partial(_list_page, client, workspace_id, token)
            )
            for summary in page.get("syncJobSummaries", []):
                jobs[summary["syncSource"]] = dict(summary)
            token = page.get("nextToken")
            if not token:
                return jobs

    async def create(self, job: SyncJob) -> Observation:
        spec = _spec(job)
        client, identity = await self._client(job)
        self._lists.invalidate(self._scope(spec, identity))
        tags = desired_tags(job)
        try:
            created = await self._call(
                "CreateSyncJob",
                lambda: client.create_sync_job(
                    workspaceId=spec.workspace_id,
                    syncSource=spec.sync_source,
                    syncRole=spec.sync_role,
                    tags=tags,
                ),
            )
        except ProviderError as error:
            if error.code != "ConflictException":
                raise
            raise ProviderError(
                NAME_TAKEN,
                f"a sync job for {spec.sync_source} already exists in {spec.workspace_id}",
                retryable=False,
                operation="CreateSyncJob",
            ) from error
        summary = {
            "arn": created["arn"],
            "status": {"state": created["state"]},
            "creationDateTime": created.get("creationDateTime"),
        }
        return _observation(summary, job, tags=tags)

    async def update(self, job: SyncJob, observed: Observation) -> Observation:
        client, _ = await self._client(job)
        arn = observed.remote_id
        assert arn is not None
        to_tag, to_untag = tag_changes(desired_tags(job), dict(_basis(observed).tags))
        if to_tag:
            await self._call(
                "TagResource", lambda: client.tag_resource(resourceARN=arn, tags=to_tag)
            )
        if to_untag:
            await self._call(
                "UntagResource", lambda: client.untag_resource(resourceARN=arn, tagKeys=to_untag)
            )
        return dataclasses.replace(
            observed,
            up_to_date=True,
            drift=(),
            owner=job.owner,
            basis=TwinMakerBasis(desired_tags(job)),
        )

    async def release(self, job: SyncJob, observed: Observation) -> None:
        client, _ = await self._client(job)
        arn = observed.remote_id
        assert arn is not None
        await self._call(
            "UntagResource", lambda: client.untag_resource(resourceARN=arn, tagKeys=[OWNER_TAG])
        )

    async def delete(self, job: SyncJob, observed: Observation) -> None:
        spec = _spec(job)
        client, identity = await self._client(job)
        self._lists.invalidate(self._scope(spec, identity))
        try:
            await self._call(
                "DeleteSyncJob",
                lambda: client.delete_sync_job(
                    workspaceId=spec.workspace_id, syncSource=spec.sync_source
                ),
            )
        except ProviderError as error:
            if error.code != "ResourceNotFoundException":
                raise


class _Provided(botocore.credentials.CredentialProvider):
    """Hands botocore credentials made elsewhere (an assumed role's, refreshed by botocore)."""

    METHOD = "assume-role"

    def __init__(self, credentials: botocore.credentials.Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def _assume_role(
    source: botocore.session.Session, spec: TwinMakerSpec, endpoint: str | None
) -> botocore.credentials.Credentials:
    """Credentials of spec.assumeRole, assumed with `source`'s: botocore's AssumeRole fetcher
    (as a profile's role_arn uses), deferred to first use and refreshed before expiry."""
    role = spec.assume_role
    assert role is not None
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise ProviderError(
            "CredentialsMissing",
            f"no AWS credentials to assume {role.role_arn} with",
            retryable=False,
            operation="AssumeRole",
        )
    extra: dict[str, str] = {"RoleSessionName": role.session_name}
    if role.external_id:
        extra["ExternalId"] = role.external_id
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            source.create_client,
            region_name=spec.region,
            endpoint_url=endpoint,
            config=_config(endpoint),
        ),
        source_credentials=source_credentials,
        role_arn=role.role_arn,
        extra_args=extra,
    )
    return botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )


def _owned_page(tagging: ResourceGroupsTaggingAPIClient, token: str) -> Any:
    return tagging.get_resources(
        PaginationToken=token,
        TagFilters=[{"Key": OWNER_TAG}],
        ResourceTypeFilters=["iottwinmaker"],
        ResourcesPerPage=_TAG_PAGE_SIZE,
    )


def _list_page(client: IoTTwinMakerClient, workspace_id: str, token: str | None) -> Any:
    if token:
        return client.list_sync_jobs(
            workspaceId=workspace_id, maxResults=_LIST_PAGE_SIZE, nextToken=token
        )
    return client.list_sync_jobs(workspaceId=workspace_id, maxResults=_LIST_PAGE_SIZE)


def _resources_page(client: IoTTwinMakerClient, spec: TwinMakerSpec, token: str | None) -> Any:
    if token:
        return client.list_sync_resources(
            workspaceId=spec.workspace_id,
            syncSource=spec.sync_source,
            maxResults=_RESOURCE_PAGE_SIZE,
            nextToken=token,
        )
    return client.list_sync_resources(
        workspaceId=spec.workspace_id, syncSource=spec.sync_source, maxResults=_RESOURCE_PAGE_SIZE
    )


def _spec(job: SyncJob) -> TwinMakerSpec:
    assert job.spec.twinmaker is not None, "TwinMakerProvider got a SyncJob without awsIoTTwinMaker"
    return job.spec.twinmaker
