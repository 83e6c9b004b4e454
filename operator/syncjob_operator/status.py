"""Status as a pure function of the job, the reconcile outcome and the previous status.

Status is recomputed from scratch on every reconcile (ACK resets and refills conditions in one
place); only lastTransitionTime is carried over while a condition keeps its status. Keys this
module owns are cleared explicitly in the merge patch. Condition types, reasons and their
accessors live here, and nowhere else.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncjob_operator.converge import Outcome
from syncjob_operator.model import PAUSED_ANNOTATION, SyncJob
from syncjob_operator.ownership import REFUSALS
from syncjob_operator.providers.base import Observation, SyncProgress

OWNED_KEYS = (
    "observedGeneration",
    "provider",
    "conditions",
    "remote",
    "syncProgress",
    "lastRun",
    "failedInputs",
    "terminalChecks",
    "nextCheckTime",
)

# Condition types.
READY = "Ready"
SYNCED = "Synced"
TERMINAL = "Terminal"

# Condition reasons, as named constants so that tests, docs and the Argo CD check agree.
AVAILABLE = "Available"
CREATING = "Creating"
DELETING = "Deleting"
REMOTE_ABSENT = "RemoteAbsent"
REMOTE_ERROR = "RemoteError"
UNOBSERVED = "Unobserved"
RECONCILE_SUCCESS = "ReconcileSuccess"
RECONCILE_ERROR = "ReconcileError"
OBSERVING = "Observing"  # ObserveOnly: mirrored, never changed
PAUSED = "ReconcilePaused"  # Crossplane's reason for its pause annotation


@dataclass(frozen=True)
class TerminalRecord:
    """A terminal error's inputs hash, how many checks in a row found it, and the next one."""

    inputs: str
    checks: int
    next_check: datetime.datetime


def condition(status: Mapping[str, Any], condition_type: str) -> Mapping[str, Any] | None:
    return next(
        (c for c in status.get("conditions") or [] if c.get("type") == condition_type), None
    )


def condition_status(status: Mapping[str, Any], condition_type: str) -> str | None:
    found = condition(status, condition_type)
    return None if found is None else found.get("status")


def condition_reason(status: Mapping[str, Any], condition_type: str) -> str | None:
    found = condition(status, condition_type)
    return None if found is None else found.get("reason")


def condition_message(status: Mapping[str, Any], condition_type: str) -> str | None:
    found = condition(status, condition_type)
    return None if found is None else found.get("message")


def remote_id(status: Mapping[str, Any]) -> str:
    """The remote job's id as status shows it; empty when none is recorded."""
    return str((status.get("remote") or {}).get("id") or "")


def remote_state(status: Mapping[str, Any]) -> str | None:
    return (status.get("remote") or {}).get("state")


def failing_resources(status: Mapping[str, Any]) -> int:
    """How many of the remote job's resources status shows in ERROR."""
    return int((status.get("syncProgress") or {}).get("ERROR") or 0)


def last_run_seen(status: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The id and status of the latest run status shows."""
    last = status.get("lastRun") or {}
    return last.get("id"), last.get("status")


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _remote(observed: Observation, prior: Mapping[str, Any]) -> dict[str, Any]:
    if not observed.exists:
        # Keep the id of a job that vanished: it tells the user which one to look for.
        return {k: v for k, v in {"id": prior.get("id"), "state": "ABSENT"}.items() if v}
    fields = {
        "id": observed.remote_id,
        "state": observed.state,
        "upToDate": observed.up_to_date,
        "errorCode": observed.error_code,
        "errorMessage": observed.error_message,
        "createdAt": _iso(observed.created_at),
        "updatedAt": _iso(observed.updated_at),
        "scheduleId": observed.schedule_id,
    }
    return {k: v for k, v in fields.items() if v is not None}


# TwinMaker's SyncResourceState values: each is always present in status.syncProgress.
RESOURCE_STATES = ("INITIALIZING", "PROCESSING", "IN_SYNC", "ERROR", "DELETED")


def _progress(progress: SyncProgress) -> dict[str, Any]:
    shown: dict[str, Any] = {state: progress.count(state) for state in RESOURCE_STATES}
    shown["complete"] = progress.complete
    if progress.errors:
        shown["errors"] = [
            {
                "resourceType": e.resource_type,
                "externalId": e.external_id,
                "code": e.code,
                "message": e.message[:1024],
            }
            for e in progress.errors
        ]
    return shown


def _last_run(job: SyncJob, outcome: Outcome, prior: Mapping[str, Any]) -> Any:
    """The latest run as last read; kept while nothing newer was read and the job exists."""
    observed = outcome.observation
    run = observed.last_run if observed is not None else None
    if run is None:
        gone = observed is not None and not observed.exists
        return None if gone else prior.get("lastRun")
    mark = job.run_mark
    request = job.spec.run_request
    requested = (outcome.run_started is not None and outcome.run_started.run_id == run.run_id) or (
        mark is not None and mark.run_id == run.run_id
    )
    shown = {
        "id": run.run_id,
        "status": run.status,
        "requestId": (mark.request_id if mark and mark.run_id == run.run_id else None)
        or (request.request_id if requested and request else None),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "error": run.error[:4096] if run.error else None,
    }
    return {k: v for k, v in shown.items() if v is not None}


def _progress_status(observed: Observation | None, prior: Mapping[str, Any]) -> Any:
    """Read only by the drift pass: kept from before while the job stays ready and this look
    did not read it; gone once the job is not ready."""
    if observed is not None and observed.progress is not None:
        return _progress(observed.progress)
    if observed is None or (observed.exists and observed.ready):
        return prior.get("syncProgress")
    return None


def _ready(job: SyncJob, outcome: Outcome, prior: Mapping[str, Any]) -> tuple[str, str, str]:
    observed = outcome.observation
    error = outcome.error
    if error is not None and error.code in REFUSALS:
        return "False", error.code, error.message  # a remote job exists, and it is not ours
    if observed is None and job.deleting:
        # A deletion that could not read the remote job (e.g. revoked credentials): it still
        # goes away, and the last state read is all there is to show.
        state = (prior.get("remote") or {}).get("state") or "unknown"
        return "False", DELETING, f"remote state {state} (last read)"
    if observed is None:
        previous = condition(prior, READY)
        if previous is not None:
            return previous["status"], previous["reason"], previous["message"]
        return "Unknown", UNOBSERVED, "the remote job has not been read yet"
    if job.deleting or outcome.action in ("deleting", "deleted", "orphaned"):
        return "False", DELETING, f"remote state {observed.state or 'ABSENT'}"
    if not observed.exists:
        return "False", REMOTE_ABSENT, "the remote job does not exist"
    if observed.failed:
        return (
            "False",
            REMOTE_ERROR,
            f"{observed.error_code or 'ERROR'}: {observed.error_message or ''}".strip(),
        )
    if not observed.settled:
        return "False", CREATING, f"remote state {observed.state}"
    if observed.ready:
        return "True", AVAILABLE, f"remote job {observed.remote_id} is {observed.state}"
    return "False", CREATING, f"remote state {observed.state}"


def _synced(
    outcome: Outcome, terminal: TerminalRecord | None, *, deleting: bool
) -> tuple[str, str, str]:
    error = outcome.error
    if outcome.action == "paused":
        return (
            "False",
            PAUSED,
            f"paused by the annotation {PAUSED_ANNOTATION}: no remote call until it is removed",
        )
    if error is None and outcome.action == "observed":
        differs = (
            f"; it differs from the spec in {', '.join(outcome.drift)}" if outcome.drift else ""
        )
        return "True", OBSERVING, f"ObserveOnly: mirrored, never changed by the operator{differs}"
    if error is None:
        # Not the action: that is the Event's. A message that changed with every reconcile would
        # cost a status write on every drift pass.
        return "True", RECONCILE_SUCCESS, "the remote job matches the spec"
    advice = "will retry"
    when = f"at {_iso(terminal.next_check)}" if terminal else "later"
    if not error.retryable and deleting:
        advice = (
            f"deletion blocked, the remote job and the finalizer stay; will check again {when},"
            " or set spec.deletionPolicy: Orphan to delete the SyncJob and keep the remote job"
        )
    elif not error.retryable:
        advice = f"will check again {when}, or at once when the spec or its Secret changes"
    where = f"{error.operation}: " if error.operation else ""
    return "False", RECONCILE_ERROR, f"{where}{error.code}: {error.message} ({advice})"


def _condition(
    condition_type: str,
    value: tuple[str, str, str],
    generation: int,
    prior: Mapping[str, Any],
    now: str,
) -> dict[str, Any]:
    status, reason, message = value
    previous = condition(prior, condition_type)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    return {
        "type": condition_type,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def compute_status(
    job: SyncJob,
    outcome: Outcome,
    prior: Mapping[str, Any],
    now: datetime.datetime,
    *,
    terminal: TerminalRecord | None = None,
) -> dict[str, Any]:
    """The full status for this outcome. `terminal` records what produced a terminal error and
    when to check it again, so that unchanged inputs are not retried sooner."""
    stamp = _iso(now)
    assert stamp is not None
    conditions = [
        _condition(READY, _ready(job, outcome, prior), job.generation, prior, stamp),
        _condition(
            SYNCED, _synced(outcome, terminal, deleting=job.deleting), job.generation, prior, stamp
        ),
    ]
    error = outcome.error
    if error is None or error.retryable:
        terminal = None
    else:
        conditions.append(
            _condition(TERMINAL, ("True", error.code, error.message), job.generation, prior, stamp)
        )
    observed = outcome.observation
    status: dict[str, Any] = {
        "observedGeneration": job.generation,
        "provider": job.spec.provider,
        "conditions": conditions,
        "remote": _remote(observed, prior.get("remote") or {}) if observed else prior.get("remote"),
        "syncProgress": _progress_status(observed, prior),
        "lastRun": _last_run(job, outcome, prior),
        "failedInputs": terminal.inputs if terminal else None,
        "terminalChecks": terminal.checks if terminal else None,
        "nextCheckTime": _iso(terminal.next_check) if terminal else None,
    }
    return {k: v for k, v in status.items() if v is not None}


def status_patch(new: Mapping[str, Any], prior: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that turns the prior status into `new` for the keys this module owns;
    empty when nothing a user can see would change (status is written only on change)."""
    if all(new.get(key) == prior.get(key) for key in OWNED_KEYS):
        return {}
    patch: dict[str, Any] = {k: None for k in OWNED_KEYS if k in prior and k not in new}
    patch.update(new)
    if isinstance(prior.get("remote"), Mapping) and isinstance(new.get("remote"), Mapping):
        patch["remote"] = {
            **{k: None for k in prior["remote"] if k not in new["remote"]},
            **new["remote"],
        }
    return patch


def converged(job: SyncJob, status: Mapping[str, Any]) -> bool:
    """Nothing is left for a change handler to finish: this generation is handled, the remote
    job is recorded and Ready, the last reconcile succeeded, and no create or requested run is
    in flight. Only drift can change that, and the drift pass looks for it per scope."""
    return (
        status.get("observedGeneration") == job.generation
        and job.external_id is not None
        and job.pending_create is None
        and not job.run_outstanding
        and condition_status(status, READY) == "True"
        and condition_status(status, SYNCED) == "True"
    )
