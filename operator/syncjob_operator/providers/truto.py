"""Truto sync jobs through httpx.

Truto assigns ids and stores no field an owner marker could live in without changing what a
run does, so a job created just before a crash cannot be found by name or by mark. The
reconciler writes a create-pending marker (the time and a hash of the content sent) before
POSTing; `find_created` lists the scope's jobs of that content created since the marker, and
the reconciler claims one nobody else owns (identical jobs are interchangeable).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from syncjob_operator.metrics import REMOTE_CALLS, count_failed_call
from syncjob_operator.model import ProviderName, SyncJob, TrutoSpec, parse_time
from syncjob_operator.providers.base import (
    ABSENT,
    READ_TIMEOUT_SECONDS,
    Observation,
    ProviderError,
    Run,
    SecretReader,
    secret_value,
)
from syncjob_operator.providers.listcache import SharedListCache
from syncjob_operator.providers.ratelimit import RateBudget

DEFAULT_BASE_URL = "https://api.truto.one"
_PAGE_LIMIT = 100
_TERMINAL_CODES = {
    400: "ValidationError",
    401: "Unauthorized",
    403: "Forbidden",
    422: "ValidationError",
}


def desired_body(spec: TrutoSpec) -> dict[str, Any]:
    """The sync job as Truto stores it, from the spec (unset optional fields left out)."""
    return {
        "integration_name": spec.integration_name,
        "args_schema": spec.args_schema,
        "resources": [r.model_dump(exclude_none=True) for r in spec.resources],
    }


def desired_trigger(spec: TrutoSpec) -> dict[str, Any] | None:
    """The cron trigger the spec asks for, as Truto stores it (None: no schedule)."""
    if spec.schedule is None:
        return None
    return {
        "cron_expression": spec.schedule.cron_expression,
        "integrated_account_id": spec.schedule.integrated_account_id,
        "args": spec.schedule.args,
    }


@dataclass(frozen=True)
class ScheduleChanges:
    create: dict[str, Any] | None = None
    patch: tuple[str, dict[str, Any]] | None = None
    delete: tuple[str, ...] = ()

    @property
    def none(self) -> bool:
        return self.create is None and self.patch is None and not self.delete


def schedule_changes(
    desired: dict[str, Any] | None, triggers: list[dict[str, Any]]
) -> ScheduleChanges:
    """How to turn the job's remote cron triggers into the one the spec asks for (or none).
    The job is ours, so every trigger on it is ours too: extras are removed."""
    if desired is None:
        return ScheduleChanges(delete=tuple(t["id"] for t in triggers))
    if not triggers:
        return ScheduleChanges(create=desired)
    keep, *extra = sorted(triggers, key=lambda t: str(t.get("created_at", "")))
    fields = changed_fields(desired, keep)
    return ScheduleChanges(
        patch=(keep["id"], fields) if fields else None, delete=tuple(t["id"] for t in extra)
    )


def changed_fields(desired: dict[str, Any], remote: dict[str, Any]) -> dict[str, Any]:
    """The top-level fields whose remote value differs: what a PATCH must send."""
    return {k: v for k, v in desired.items() if _normalized(remote.get(k)) != _normalized(v)}


def _normalized(value: Any) -> Any:
    # Truto may echo optional resource fields back as null; null and absent mean the same.
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def list_page(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A list page's items and next cursor. Truto's clients read `result`; its docs show
    `results`: accept both."""
    items = payload.get("result", payload.get("results")) or []
    return list(items), payload.get("next_cursor") or None


def created_since(started: datetime.datetime | None, created_at: datetime.datetime | None) -> bool:
    """Whether a remote object could be the one an interrupted create made from `started` on
    (a little clock skew between us and the provider is allowed)."""
    if started is None or created_at is None:
        return False
    return created_at >= started - datetime.timedelta(seconds=30)


def _run(remote: Mapping[str, Any]) -> Run:
    return Run(
        run_id=str(remote["id"]),
        status=str(remote.get("status") or "created"),
        created_at=_timestamp(remote.get("created_at")),
        started_at=_timestamp(remote.get("started_at")),
        finished_at=_timestamp(remote.get("finished_at")),
        error=str(remote["error"]) if remote.get("error") else None,
    )


def _timestamp(value: str | None) -> datetime.datetime | None:
    return parse_time(value) if value else None


@dataclass(frozen=True)
class TrutoBasis:
    """The job and cron triggers a Truto observation read: what update() and delete() use."""

    job: Mapping[str, Any]
    triggers: tuple[Mapping[str, Any], ...]


def _basis(observed: Observation) -> TrutoBasis:
    assert isinstance(observed.basis, TrutoBasis), "not a Truto observation"
    return observed.basis


def content_hash(body: dict[str, Any]) -> str:
    """A hash of what a create sends, computed alike from the spec and from a listed job."""
    fields = {k: _normalized(body.get(k)) for k in ("integration_name", "args_schema", "resources")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _observation(
    remote: dict[str, Any], spec: TrutoSpec, triggers: list[dict[str, Any]] | None = None
) -> Observation:
    """`triggers` None: not read (no schedule wanted or known), counted as in sync."""
    schedule_in_sync = triggers is None or schedule_changes(desired_trigger(spec), triggers).none
    drift = tuple(sorted(changed_fields(desired_body(spec), remote)))
    if not schedule_in_sync:
        drift = (*drift, "schedule")
    return Observation(
        exists=True,
        remote_id=remote["id"],
        state="PRESENT",
        up_to_date=not drift,
        drift=drift,
        ready=True,
        created_at=_timestamp(remote.get("created_at")),
        updated_at=_timestamp(remote.get("updated_at")),
        schedule_id=triggers[0]["id"] if triggers else None,
        basis=TrutoBasis(remote, tuple(triggers or ())),
    )


def classify(response: httpx.Response, operation: str) -> ProviderError:
    try:
        payload = response.json()
        message = str(payload.get("message") or payload.get("error") or response.text)
    except ValueError:
        message = response.text or response.reason_phrase
    status = response.status_code
    if status == 429 or status >= 500:
        # ratelimit-reset is sent on every response; it says when to come back only on a 429.
        reset = response.headers.get("retry-after")
        if status == 429:
            reset = response.headers.get("ratelimit-reset") or reset
        retry_after = float(reset) if reset and reset.replace(".", "", 1).isdigit() else None
        code = "RateLimited" if status == 429 else f"ServerError{status}"
        return ProviderError(
            code,
            message,
            retryable=True,
            retry_after=retry_after,
            operation=operation,
            throttled=status == 429,
        )
    code = _TERMINAL_CODES.get(status, f"HTTP{status}")
    return ProviderError(code, message, retryable=False, operation=operation)


class TrutoProvider:
    name: ProviderName = "Truto"
    marks_owner = False
    found_by_spec = False  # a job is its id

    def __init__(
        self,
        secrets: SecretReader,
        *,
        default_base_url: str = DEFAULT_BASE_URL,
        timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        self._secrets = secrets
        self._default_base_url = default_base_url
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None  # made in connect(), inside the event loop
        self._lists: SharedListCache[Hashable, dict[str, dict[str, Any]]] = SharedListCache()
        # By token (and base URL): the budget its responses state, shared by its SyncJobs.
        self._budgets: defaultdict[Hashable, RateBudget] = defaultdict(RateBudget)
        self._trigger_lists: SharedListCache[Hashable, dict[str, list[dict[str, Any]]]] = (
            SharedListCache()
        )

    async def connect(self) -> None:
        # As many kept-alive connections as open ones: a burst neither closes and re-opens
        # (TLS) connections nor churns the pool. Few of them: httpcore polls every idle
        # connection's socket twice per request (4.6% of the event loop at 32 connections in a
        # 10,000-object burst), and Truto's rate limits allow far fewer requests than 16
        # connections carry. A request waits for a free connection as long as it takes: that
        # is queueing, not failure.
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout, pool=None),
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _request(
        self,
        job: SyncJob,
        operation: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        spec = _spec(job)
        ref = spec.token_secret_ref
        token = await secret_value(self._secrets, job.namespace, ref.name, ref.key)
        try:
            assert self._http is not None, "connect() first"
            async with self._budgets[await self._token_scope(job)].slot() as observe:
                response = await self._http.request(
                    method,
                    self._base_url(spec) + path,
                    json=body,
                    params=params,
                    headers={"Authorization": f"Bearer {token}"},
                )
                observe(response.status_code, response.headers)
        except httpx.TransportError as exc:
            code = "Timeout" if isinstance(exc, httpx.TimeoutException) else "ConnectionError"
            REMOTE_CALLS.labels(self.name, operation, code).inc()
            # The request may have reached Truto before the connection failed.
            raise ProviderError(
                code,
                f"{type(exc).__name__}: {exc}",
                retryable=True,
                operation=operation,
                answered=False,
            ) from exc
        if response.status_code == 404 and not_found_ok:
            REMOTE_CALLS.labels(self.name, operation, "NotFound").inc()
            return None
        if response.is_error:
            error = classify(response, operation)
            count_failed_call(self.name, error)
            raise error
        REMOTE_CALLS.labels(self.name, operation, "ok").inc()
        return response.json() if response.content else {}

    def _base_url(self, spec: TrutoSpec) -> str:
        return (spec.base_url or self._default_base_url).rstrip("/")

    async def scope(self, job: SyncJob) -> Hashable:
        """Jobs visible to one token in one integration."""
        return (*await self._token_scope(job), _spec(job).integration_name)

    async def _token_scope(self, job: SyncJob) -> tuple[str, str, str]:
        """What one token sees: the token itself, hashed, so that Secrets in several namespaces
        holding one token share a scope."""
        spec = _spec(job)
        ref = spec.token_secret_ref
        token = await secret_value(self._secrets, job.namespace, ref.name, ref.key)
        token_scope = hashlib.sha256(token.encode()).hexdigest()[:16]
        return (self.name, self._base_url(spec), token_scope)

    def fingerprint(self, job: SyncJob) -> str:
        return content_hash(desired_body(_spec(job)))

    async def _list(self, job: SyncJob) -> dict[str, dict[str, Any]]:
        params = {"integration_name": _spec(job).integration_name}
        return {
            item["id"]: item for item in await self._pages(job, "ListSyncJobs", "/sync-job", params)
        }

    async def _pages(
        self, job: SyncJob, operation: str, path: str, filters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {**filters, "limit": _PAGE_LIMIT}
            if cursor:
                params["next_cursor"] = cursor
            payload = await self._request(job, operation, "GET", path, params=params)
            page, cursor = list_page(payload or {})
            items.extend(page)
            if not cursor or not page:
                return items

    async def observe(
        self,
        job: SyncJob,
        *,
        max_age: float | None = None,
        content: bool = True,
        progress: bool = False,
    ) -> Observation:
        spec = _spec(job)
        if job.remote_id is None:
            return ABSENT
        if max_age is not None:
            jobs = await self._lists.get(
                await self.scope(job), lambda: self._list(job), max_age=max_age
            )
            found = jobs.get(job.remote_id)
        else:
            found = await self._request(
                job, "GetSyncJob", "GET", f"/sync-job/{job.remote_id}", not_found_ok=True
            )
        if found is None:
            return ABSENT
        wanted_or_known = spec.schedule is not None or job.remote_schedule_id is not None
        if not (content and wanted_or_known):
            triggers = None
        elif max_age is None:
            triggers = await self._triggers(job, found["id"])
        else:
            listed = await self._trigger_lists.get(
                await self._token_scope(job), lambda: self._all_triggers(job), max_age=max_age
            )
            triggers = listed.get(found["id"], [])
        observed = _observation(found, spec, triggers)
        if progress:  # the drift pass's per-job read: how the latest run went
            observed = dataclasses.replace(observed, last_run=await self._latest_run(job))
        return observed

    async def _triggers(self, job: SyncJob, job_id: str) -> list[dict[str, Any]]:
        # Triggers are found by the job they belong to: a natural key, so a trigger created
        # just before a crash is found again without a marker of its own.
        payload = await self._request(
            job,
            "ListSyncJobCronTriggers",
            "GET",
            "/sync-job-cron-trigger",
            params={"sync_job_id": job_id, "limit": _PAGE_LIMIT},
        )
        return list_page(payload or {})[0]

    async def _all_triggers(self, job: SyncJob) -> dict[str, list[dict[str, Any]]]:
        """Every cron trigger the token sees, by sync job: one list for drift detection."""
        by_job: dict[str, list[dict[str, Any]]] = {}
        for trigger in await self._pages(
            job, "ListSyncJobCronTriggers", "/sync-job-cron-trigger", {}
        ):
            by_job.setdefault(str(trigger.get("sync_job_id")), []).append(trigger)
        return by_job

    async def find_created(self, job: SyncJob) -> list[Observation]:
        pending = job.pending_create
        if pending is None:
            return []
        spec = _spec(job)
        found = [
            remote
            for remote in (await self._list(job)).values()
            if content_hash(remote) == pending.content_hash
            and created_since(pending.started_at, _timestamp(remote.get("created_at")))
        ]
        found.sort(key=lambda remote: (str(remote.get("created_at", "")), remote["id"]))
        return [_observation(remote, spec, []) for remote in found]

    async def start_run(self, job: SyncJob) -> Run:
        request = _spec(job).run
        assert request is not None
        assert job.remote_id is not None
        body = {
            "sync_job_id": job.remote_id,
            "integrated_account_id": request.integrated_account_id,
            "args": request.args,
        }
        started = await self._request(job, "CreateSyncJobRun", "POST", "/sync-job-run", body=body)
        assert started is not None
        return _run(started)

    async def runs_since(self, job: SyncJob, since: datetime.datetime) -> list[Run]:
        request = _spec(job).run
        assert request is not None
        assert job.remote_id is not None
        found = [
            run
            for run in await self._runs(job, request.integrated_account_id)
            if run.get("args", {}) == request.args
            and created_since(since, _timestamp(run.get("created_at")))
        ]
        found.sort(key=lambda run: (str(run.get("created_at", "")), run["id"]))
        return [_run(run) for run in found]

    async def _latest_run(self, job: SyncJob) -> Run | None:
        """The job's newest run, on-demand or scheduled."""
        runs = await self._runs(job)
        latest = max(
            runs, key=lambda run: (str(run.get("created_at", "")), run["id"]), default=None
        )
        return _run(latest) if latest else None

    async def _runs(self, job: SyncJob, account: str | None = None) -> list[dict[str, Any]]:
        filters = {"sync_job_id": job.remote_id}
        if account is not None:
            filters["integrated_account_id"] = account
        return await self._pages(job, "ListSyncJobRuns", "/sync-job-run", filters)

    async def release(self, job: SyncJob, observed: Observation) -> None:
        """Nothing to release: Truto keeps no owner marker; ownership is the SyncJob's claim."""

    async def create(self, job: SyncJob) -> Observation:
        self._lists.invalidate(await self.scope(job))
        created = await self._request(
            job, "CreateSyncJob", "POST", "/sync-job", body=desired_body(_spec(job))
        )
        assert created is not None
        # A new job has no triggers yet: saying so lets reconcile add the schedule at once.
        return _observation(created, _spec(job), [])

    async def update(self, job: SyncJob, observed: Observation) -> Observation:
        spec = _spec(job)
        remote: dict[str, Any] = dict(_basis(observed).job)
        changes = changed_fields(desired_body(spec), remote)
        if changes:
            self._lists.invalidate(await self.scope(job))
            path = f"/sync-job/{remote['id']}"
            remote = await self._request(job, "UpdateSyncJob", "PATCH", path, body=changes) or {}
        triggers = [dict(t) for t in _basis(observed).triggers]
        schedule = schedule_changes(desired_trigger(spec), triggers)
        kept = await self._apply_schedule(job, remote["id"], schedule)
        if kept is None and desired_trigger(spec) is not None:  # already in step: unchanged
            kept = next(t for t in triggers if t["id"] not in schedule.delete)
        return _observation(remote, spec, [kept] if kept else [])

    async def _apply_schedule(
        self, job: SyncJob, job_id: str, changes: ScheduleChanges
    ) -> dict[str, Any] | None:
        """Applies `changes`; returns the trigger left on the job, if any."""
        if not changes.none:
            self._trigger_lists.invalidate(await self._token_scope(job))
        path = "/sync-job-cron-trigger"
        kept: dict[str, Any] | None = None
        if changes.create is not None:
            body = {**changes.create, "sync_job_id": job_id}
            kept = await self._request(job, "CreateSyncJobCronTrigger", "POST", path, body=body)
        if changes.patch is not None:
            trigger_id, fields = changes.patch
            kept = await self._request(
                job, "UpdateSyncJobCronTrigger", "PATCH", f"{path}/{trigger_id}", body=fields
            )
        for trigger_id in changes.delete:
            await self._request(
                job, "DeleteSyncJobCronTrigger", "DELETE", f"{path}/{trigger_id}", not_found_ok=True
            )
        return kept

    async def delete(self, job: SyncJob, observed: Observation) -> None:
        assert observed.remote_id is not None
        # Triggers first (observe read them if the job has or wants one), then the job.
        triggers = [dict(t) for t in _basis(observed).triggers]
        await self._apply_schedule(job, observed.remote_id, schedule_changes(None, triggers))
        self._lists.invalidate(await self.scope(job))
        await self._request(
            job, "DeleteSyncJob", "DELETE", f"/sync-job/{observed.remote_id}", not_found_ok=True
        )


def _spec(job: SyncJob) -> TrutoSpec:
    assert job.spec.truto is not None, "TrutoProvider got a SyncJob without truto"
    return job.spec.truto
