"""Status as a pure function of the job, the reconcile outcome and the previous status.

Status is recomputed from scratch on every reconcile (ACK resets and refills conditions in one
place); only lastTransitionTime is carried over while a condition keeps its status. Keys this
module owns are cleared explicitly in the merge patch; status.pendingCreate belongs to the
StatusWriter and is never touched here.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from syncjob_operator.model import SyncJob
from syncjob_operator.providers.base import Observation
from syncjob_operator.reconcile import Outcome

OWNED_KEYS = (
    "observedGeneration",
    "provider",
    "lastObservedTime",
    "conditions",
    "remote",
    "failedInputs",
)

# Condition reasons, as named constants so that tests, docs and the Argo CD check agree.
AVAILABLE = "Available"
CREATING = "Creating"
DELETING = "Deleting"
ABSENT = "RemoteAbsent"
REMOTE_ERROR = "RemoteError"
UNOBSERVED = "Unobserved"
RECONCILE_SUCCESS = "ReconcileSuccess"
RECONCILE_ERROR = "ReconcileError"


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


def _ready(job: SyncJob, outcome: Outcome, prior: Mapping[str, Any]) -> tuple[str, str, str]:
    observed = outcome.observation
    if observed is None:
        previous = _find(prior.get("conditions", []), "Ready")
        if previous is not None:
            return previous["status"], previous["reason"], previous["message"]
        return "Unknown", UNOBSERVED, "the remote job has not been read yet"
    if job.deleting or outcome.action in ("deleting", "deleted", "orphaned"):
        return "False", DELETING, f"remote state {observed.state or 'ABSENT'}"
    if not observed.exists:
        return "False", ABSENT, "the remote job does not exist"
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


def _synced(outcome: Outcome) -> tuple[str, str, str]:
    error = outcome.error
    if error is None:
        return "True", RECONCILE_SUCCESS, f"last reconcile: {outcome.action}"
    advice = (
        "will retry" if error.retryable else "will not retry until the spec or its Secret changes"
    )
    where = f"{error.operation}: " if error.operation else ""
    return "False", RECONCILE_ERROR, f"{where}{error.code}: {error.message} ({advice})"


def _find(conditions: Any, kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == kind), None)


def _condition(
    kind: str, value: tuple[str, str, str], generation: int, prior: Mapping[str, Any], now: str
) -> dict[str, Any]:
    status, reason, message = value
    previous = _find(prior.get("conditions", []), kind)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    return {
        "type": kind,
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
    failed_inputs: str | None = None,
) -> dict[str, Any]:
    """The full status for this outcome. `failed_inputs` is the hash of what produced a
    terminal error, recorded so that unchanged inputs are not retried."""
    stamp = _iso(now)
    assert stamp is not None
    conditions = [
        _condition("Ready", _ready(job, outcome, prior), job.generation, prior, stamp),
        _condition("Synced", _synced(outcome), job.generation, prior, stamp),
    ]
    error = outcome.error
    if error is not None and not error.retryable:
        conditions.append(
            _condition(
                "Terminal", ("True", error.code, error.message), job.generation, prior, stamp
            )
        )
    observed = outcome.observation
    status: dict[str, Any] = {
        "observedGeneration": job.generation,
        "provider": job.spec.provider,
        "conditions": conditions,
        "remote": _remote(observed, prior.get("remote") or {}) if observed else prior.get("remote"),
        "lastObservedTime": stamp if observed else prior.get("lastObservedTime"),
        "failedInputs": failed_inputs if error is not None and not error.retryable else None,
    }
    return {k: v for k, v in status.items() if v is not None}


def status_patch(new: Mapping[str, Any], prior: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that turns the prior status into `new` for the keys this module owns."""
    patch: dict[str, Any] = {k: None for k in OWNED_KEYS if k in prior and k not in new}
    patch.update(new)
    if isinstance(prior.get("remote"), Mapping) and isinstance(new.get("remote"), Mapping):
        patch["remote"] = {
            **{k: None for k in prior["remote"] if k not in new["remote"]},
            **new["remote"],
        }
    return patch
