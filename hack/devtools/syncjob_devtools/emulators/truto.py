"""Local emulator of Truto's admin API for sync jobs, runs and cron triggers.

``/sync-job``, ``/sync-job-run`` and ``/sync-job-cron-trigger`` share one CRUD
shape: list (``GET``, cursor-paged under ``result`` with ``next_cursor`` and
``limit``), create (``POST``, 201), get, partial update (``PATCH``) and delete
(``DELETE``, answers ``{"id": ...}``). Errors use Truto's shape
``{"statusCode", "error", "message"}``; every response carries the
``ratelimit-*`` headers Truto normalises.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.applications import Starlette
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

UNKNOWN_OPERATION = "UnknownOperation"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Reported as the limit when none is configured: headers stay present and numeric.
UNLIMITED = 2**31 - 1
_KNOWN_STATUSES = frozenset(status.value for status in HTTPStatus)


class TrutoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: frozenset[str] = frozenset({"demo-token"})
    # Requests allowed per token per window; None disables the 429s (not the headers).
    rate_limit: int | None = Field(default=None, ge=1)
    rate_limit_window_seconds: float = Field(default=60.0, gt=0)
    # Sync job runs go created -> running -> completed, one step per transition.
    transition_seconds: float = Field(default=1.0, ge=0)
    persist_path: Path | None = None
    # Truto scopes API tokens to an environment; jobs created without one land here.
    environment_id: str = "0b5e9c1e-9a57-4c57-8f3c-5d2f3f8f2a10"


# -- request bodies -------------------------------------------------------------


class SyncJobResource(BaseModel):
    # Truto keeps growing resource options; pass through the ones not modelled here.
    model_config = ConfigDict(extra="allow", strict=True)

    resource: str = Field(min_length=1)
    method: str = Field(min_length=1)
    id: str | None = None
    query: dict[str, Any] | None = None
    loop_on: str | None = None
    depends_on: str | None = None
    persist: bool | None = None


class SyncJobBody(BaseModel):
    model_config = ConfigDict(strict=True)

    integration_name: str = Field(min_length=1)
    args_schema: dict[str, Any]
    resources: list[SyncJobResource] = Field(default_factory=list)
    environment_id: str | None = None

    @field_validator("args_schema")
    @classmethod
    def _json_schema_object(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON schema object ({"type": "object", "properties": ...})')
        if not isinstance(value.get("properties", {}), dict):
            raise ValueError("properties must be an object")
        return value


class _RunTarget(BaseModel):
    """What runs and cron triggers share: the job, the account and where records go."""

    model_config = ConfigDict(strict=True)

    sync_job_id: str = Field(min_length=1)
    integrated_account_id: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    daemon_group_key: str | None = None
    webhook_id: str | None = None

    @model_validator(mode="after")
    def _one_destination(self) -> _RunTarget:
        if self.daemon_group_key is not None and self.webhook_id is not None:
            raise ValueError("give daemon_group_key (Daemon) or webhook_id (RapidBridge), not both")
        return self


class SyncJobRunBody(_RunTarget):
    error_handling: Literal["fail_fast", "ignore", "batch"] = "ignore"
    ignore_previous_run: bool = False


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i for i, m in enumerate(_MONTHS, 1)},
    ),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_WEEKDAYS)}),
)


def validate_cron(expression: str) -> str:
    """Check a 5-field cron expression (``*``, lists, ranges, steps, month/day names)."""
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        raise ValueError("must have 5 fields: minute hour day-of-month month day-of-week")
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            base, slash, step = part.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                raise ValueError(f"bad step {step!r} in the {name} field")
            if base == "*":
                continue
            bounds = [names.get(v.upper(), int(v) if v.isdigit() else -1) for v in base.split("-")]
            if (
                len(bounds) > 2
                or any(not low <= b <= high for b in bounds)
                or bounds != sorted(bounds)
            ):
                raise ValueError(f"bad value {part!r} in the {name} field ({low}-{high})")
    return expression


class CronTriggerBody(_RunTarget):
    cron_expression: str

    @field_validator("cron_expression")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return validate_cron(value)


# -- state ----------------------------------------------------------------------


class RunOutcome(BaseModel):
    """How the runs of one sync job end (``POST /_emulator/run-outcome``); completed clears."""

    model_config = ConfigDict(extra="forbid")

    sync_job_id: str = Field(min_length=1)
    status: Literal["completed", "failed", "stopped"] = "failed"
    error: str | None = None


class ApiToken(BaseModel):
    """Body of ``POST /_emulator/tokens``: a token to accept from now on."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1)


class TrutoState(BaseModel):
    # collection path -> object id -> the object as the API returns it
    objects: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    # sync job id -> how its runs created from then on end
    run_outcomes: dict[str, RunOutcome] = Field(default_factory=dict)


class TrutoError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def iso_ms(epoch: float) -> str:
    """Truto's timestamps: ISO-8601, milliseconds, ``Z``."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class RateLimiter:
    """Fixed windows per token, reported the way Truto does (reset in seconds)."""

    def __init__(self, limit: int | None, window: float) -> None:
        self._limit = limit
        self._window = window
        self._windows: dict[str, tuple[float, int]] = {}

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, key: str, now: float) -> tuple[bool, dict[str, str]]:
        start, used = self._windows.get(key, (now, 0))
        if now - start >= self._window:
            start, used = now, 0
        used += 1
        self._windows[key] = (start, used)
        limit = self._limit or UNLIMITED
        reset = str(max(0, math.ceil(start + self._window - now)))
        headers = {
            "ratelimit-limit": str(limit),
            "ratelimit-remaining": str(max(0, limit - used)),
            "ratelimit-reset": reset,
        }
        if used <= limit:
            return True, headers
        return False, headers | {"retry-after": reset}


class Collection:
    """One Truto resource: its path, operation names, body model and list filters."""

    path: ClassVar[str]
    noun: ClassVar[str]
    plural: ClassVar[str]
    label: ClassVar[str]
    body: ClassVar[type[BaseModel]]
    filters: ClassVar[tuple[str, ...]]

    def prepare(self, record: dict[str, Any], emulator: TrutoEmulator) -> None:
        """Check references and fill server-side fields of a new or updated object."""

    def render(self, record: dict[str, Any], emulator: TrutoEmulator, now: float) -> dict[str, Any]:
        return record


class SyncJobs(Collection):
    path = "sync-job"
    noun, plural, label = "SyncJob", "SyncJobs", "Sync job"
    body = SyncJobBody
    filters = ("integration_name", "environment_id")

    def prepare(self, record: dict[str, Any], emulator: TrutoEmulator) -> None:
        record.setdefault("environment_id", emulator.config.environment_id)


class _OfSyncJob(Collection):
    def prepare(self, record: dict[str, Any], emulator: TrutoEmulator) -> None:
        job = emulator.objects(SyncJobs.path).get(record["sync_job_id"])
        if job is None:
            raise TrutoError(404, f"Sync job {record['sync_job_id']} not found")
        record["resources"] = job["resources"]


class SyncJobRuns(_OfSyncJob):
    path = "sync-job-run"
    noun, plural, label = "SyncJobRun", "SyncJobRuns", "Sync job run"
    body = SyncJobRunBody
    filters = ("sync_job_id", "integrated_account_id", "status")

    def prepare(self, record: dict[str, Any], emulator: TrutoEmulator) -> None:
        super().prepare(record, emulator)
        outcome = emulator.state.run_outcomes.get(record["sync_job_id"])
        record["_outcome"] = outcome.model_dump() if outcome else None  # kept, never shown

    def render(self, record: dict[str, Any], emulator: TrutoEmulator, now: float) -> dict[str, Any]:
        created = parse_iso(record["created_at"])
        step = emulator.config.transition_seconds
        started, finished = created + step, created + 2 * step
        outcome = record.get("_outcome") or {"status": "completed", "error": None}
        status = (
            outcome["status"] if now >= finished else "running" if now >= started else "created"
        )
        shown = {k: v for k, v in record.items() if k != "_outcome"}
        return shown | {
            "status": status,
            "started_at": iso_ms(started) if now >= started else None,
            "finished_at": iso_ms(finished) if now >= finished else None,
            "error": outcome["error"] if now >= finished and status != "completed" else None,
        }


class CronTriggers(_OfSyncJob):
    path = "sync-job-cron-trigger"
    noun, plural, label = "SyncJobCronTrigger", "SyncJobCronTriggers", "Sync job cron trigger"
    body = CronTriggerBody
    filters = ("sync_job_id", "integrated_account_id")


COLLECTIONS: tuple[Collection, ...] = (SyncJobs(), SyncJobRuns(), CronTriggers())

Action = Callable[[Collection, Request, float], Awaitable[tuple[int, dict[str, Any]]]]


def _truto_error(injected: InjectedError) -> TrutoError:
    assert injected.status is not None  # _complete_fault requires it
    return TrutoError(injected.status, injected.message or "Injected fault")


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors()
    )


class TrutoEmulator:
    def __init__(self, config: TrutoConfig) -> None:
        self.config = config
        self._file = JsonStateFile(config.persist_path, TrutoState) if config.persist_path else None
        self.state = (self._file.load() if self._file else None) or TrutoState()
        self.limiter = RateLimiter(config.rate_limit, config.rate_limit_window_seconds)
        self.core = EmulatorCore(reset_state=self._reset, complete_fault=self._complete_fault)
        # The accepted tokens: configuration, not state (a reset keeps them); the admin API
        # adds and revokes them at run time.
        self.tokens = set(config.tokens)

    def objects(self, path: str) -> dict[str, dict[str, Any]]:
        return self.state.objects.setdefault(path, {})

    def _save(self) -> None:
        if self._file is not None:
            self._file.save(self.state)

    async def _admin_run_outcome(self, request: Request) -> Response:
        try:
            outcome = await parse_admin_body(request, RunOutcome)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        if outcome.sync_job_id not in self.objects(SyncJobs.path):
            return admin_error(f"no sync job {outcome.sync_job_id}", 404)
        if outcome.status == "completed":
            self.state.run_outcomes.pop(outcome.sync_job_id, None)
        else:
            self.state.run_outcomes[outcome.sync_job_id] = outcome
        self._save()
        return JSONResponse(outcome.model_dump())

    async def _admin_add_token(self, request: Request) -> Response:
        try:
            wanted = await parse_admin_body(request, ApiToken)
        except AdminBodyError as exc:
            return admin_error(exc.detail)
        self.tokens.add(wanted.token)
        return Response(status_code=201)

    async def _admin_revoke_token(self, request: Request) -> Response:
        """Revoke a token, as a Truto admin would: requests bearing it get 401 from now on."""
        token = request.path_params["token"]
        if token not in self.tokens:
            return admin_error("no such token", 404)
        self.tokens.discard(token)
        return Response(status_code=204)

    def _reset(self) -> None:
        self.state = TrutoState()
        self.limiter.reset()
        self._save()

    def _complete_fault(self, rule: FaultRule) -> FaultRule:
        names = {op for c in COLLECTIONS for op in _operations(c).values()}
        if rule.operation not in (*names, "*"):
            raise ValueError(f"unknown operation {rule.operation!r}; served: {sorted(names)}")
        if rule.has_error and rule.status is None:
            raise ValueError("Truto faults need a status")
        return rule

    # -- wiring ---------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []  # API routes first: they are the hot ones
        for collection in COLLECTIONS:
            ops = _operations(collection)
            for suffix, method, action in (
                ("", "GET", self._list),
                ("", "POST", self._create),
                ("/{id}", "GET", self._get),
                ("/{id}", "PATCH", self._update),
                ("/{id}", "DELETE", self._delete),
            ):
                endpoint = self._endpoint(ops[method + suffix], collection, action)
                routes.append(Route(f"/{collection.path}{suffix}", endpoint, methods=[method]))
        return [
            *routes,
            *self.core.admin_routes(),
            Route(f"{ADMIN_PREFIX}/run-outcome", self._admin_run_outcome, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/tokens", self._admin_add_token, methods=["POST"]),
            Route(f"{ADMIN_PREFIX}/tokens/{{token}}", self._admin_revoke_token, methods=["DELETE"]),
            Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]

    def _endpoint(
        self, operation: str, collection: Collection, action: Action
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._serve(
                operation, request, lambda now: action(collection, request, now)
            )

        return endpoint

    async def _unknown(self, request: Request) -> Response:
        async def not_found(now: float) -> tuple[int, dict[str, Any]]:
            raise TrutoError(404, f"Cannot {request.method} {request.url.path}")

        return await self._serve(UNKNOWN_OPERATION, request, not_found)

    async def _serve(
        self,
        operation: str,
        request: Request,
        action: Callable[[float], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> Response:
        now = time.time()
        object_id = request.path_params.get("id")
        # A list filtered by integration counts against the integration: per-scope call counts.
        self.core.counters.record(
            operation, object_id or request.query_params.get("integration_name")
        )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        # Limits are per presented credential, so rejected calls are limited too.
        allowed, headers = self.limiter.hit(token, now)
        try:
            if not allowed:
                raise TrutoError(429, "Rate limit exceeded, retry after ratelimit-reset seconds")
            if scheme.lower() != "bearer" or token not in self.tokens:
                raise TrutoError(401, "Invalid or missing API token")
            injection = await self.core.faults.inject(operation)
            injection.fail_before(_truto_error)
            status, body = await action(now)
            await injection.fail_after(_truto_error)
        except TrutoError as exc:
            phrase = HTTPStatus(exc.status).phrase if exc.status in _KNOWN_STATUSES else "Error"
            payload = {"statusCode": exc.status, "error": phrase, "message": exc.message}
            return JSONResponse(payload, status_code=exc.status, headers=headers)
        if object_id is None and "id" in body:
            self.core.counters.record_object(operation, body["id"])
        return JSONResponse(body, status_code=status, headers=headers)

    # -- CRUD -----------------------------------------------------------------

    async def _json_object(self, request: Request) -> dict[str, Any]:
        try:
            document = json.loads(await request.body())
        except ValueError as exc:
            raise TrutoError(400, "Request body must be valid JSON") from exc
        if not isinstance(document, dict):
            raise TrutoError(400, "Request body must be a JSON object")
        return document

    def _found(self, collection: Collection, request: Request) -> dict[str, Any]:
        record = self.objects(collection.path).get(request.path_params["id"])
        if record is None:
            raise TrutoError(404, f"{collection.label} {request.path_params['id']} not found")
        return record

    def _validated(self, collection: Collection, document: dict[str, Any]) -> dict[str, Any]:
        try:
            body = collection.body.model_validate(document)
        except ValidationError as exc:
            raise TrutoError(400, _validation_message(exc)) from exc
        return body.model_dump(mode="json", exclude_none=True)

    async def _list(
        self, collection: Collection, request: Request, now: float
    ) -> tuple[int, dict[str, Any]]:
        query = request.query_params
        raw_limit = query.get("limit", str(DEFAULT_PAGE_SIZE))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE_SIZE:
            raise TrutoError(400, f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
        wanted = {name: query[name] for name in collection.filters if name in query}
        rendered = (collection.render(r, self, now) for r in self.objects(collection.path).values())
        matching = sorted(
            (r for r in rendered if all(r.get(k) == v for k, v in wanted.items())),
            key=_list_order,
        )
        try:
            page, cursor = paginate(matching, _list_order, int(raw_limit), query.get("next_cursor"))
        except InvalidPageToken as exc:
            raise TrutoError(400, "Invalid next_cursor") from exc
        return 200, {"result": page, "next_cursor": cursor, "limit": int(raw_limit)}

    async def _create(
        self, collection: Collection, request: Request, now: float
    ) -> tuple[int, dict[str, Any]]:
        fields = self._validated(collection, await self._json_object(request))
        stamp = iso_ms(now)
        record = {"id": str(uuid.uuid4()), **fields, "created_at": stamp, "updated_at": stamp}
        collection.prepare(record, self)
        self.objects(collection.path)[record["id"]] = record
        self._save()
        return 201, collection.render(record, self, now)

    async def _get(
        self, collection: Collection, request: Request, now: float
    ) -> tuple[int, dict[str, Any]]:
        return 200, collection.render(self._found(collection, request), self, now)

    async def _update(
        self, collection: Collection, request: Request, now: float
    ) -> tuple[int, dict[str, Any]]:
        record = self._found(collection, request)
        patch = await self._json_object(request)
        known = collection.body.model_fields
        merged = {k: v for k, v in record.items() if k in known} | {
            k: v for k, v in patch.items() if k in known
        }
        # Keep updated_at strictly increasing even for two writes in one millisecond.
        updated = max(now, parse_iso(record["updated_at"]) + 0.001)
        new = {
            "id": record["id"],
            **self._validated(collection, merged),
            "created_at": record["created_at"],
            "updated_at": iso_ms(updated),
        }
        collection.prepare(new, self)
        self.objects(collection.path)[new["id"]] = new
        self._save()
        return 200, collection.render(new, self, now)

    async def _delete(
        self, collection: Collection, request: Request, now: float
    ) -> tuple[int, dict[str, Any]]:
        record = self._found(collection, request)
        del self.objects(collection.path)[record["id"]]
        if isinstance(collection, SyncJobs):  # runs and triggers go with their job
            for dependent in (SyncJobRuns.path, CronTriggers.path):
                objects = self.objects(dependent)
                for gone in [i for i, o in objects.items() if o["sync_job_id"] == record["id"]]:
                    del objects[gone]
        self._save()
        return 200, {"id": record["id"]}


def _operations(collection: Collection) -> dict[str, str]:
    return {
        "GET": f"List{collection.plural}",
        "POST": f"Create{collection.noun}",
        "GET/{id}": f"Get{collection.noun}",
        "PATCH/{id}": f"Update{collection.noun}",
        "DELETE/{id}": f"Delete{collection.noun}",
    }


def _list_order(record: dict[str, Any]) -> str:
    return f"{record['created_at']}|{record['id']}"


def create_app(config: TrutoConfig | None = None) -> Starlette:
    emulator = TrutoEmulator(config or TrutoConfig())
    app = Starlette(routes=emulator.routes(), exception_handlers=EXCEPTION_HANDLERS)
    app.state.emulator = emulator.core
    return app
