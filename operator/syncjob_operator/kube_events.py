"""The Kubernetes Events one reconcile posts, as a pure function of its outcome and the status
it leads to. No kopf here.

Kubernetes Events (`kubectl describe`, `kubectl get events`) are what this module computes;
the API server's watch events, which start reconciles, are another thing (kopf_edge/). What
happened is read from the typed outcome (the action, the Observation, the run started); what
was shown before, through status.py's accessors of the previous status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from syncjob_operator.converge import Outcome
from syncjob_operator.kube import UNREACHABLE
from syncjob_operator.status import (
    DELETING,
    READY,
    SYNCED,
    TERMINAL,
    condition,
    condition_message,
    condition_reason,
    failing_resources,
    last_run_seen,
    remote_id,
    remote_state,
)

# What started a reconcile: a change of the object (create, update, resume, pause), the
# periodic drift pass, or its deletion.
Trigger = Literal["change", "drift", "delete"]

_REASONS = {
    "created": "CreatedRemoteJob",
    "recreated": "RecreatedRemoteJob",
    "recovered": "RecoveredRemoteJob",
    "adopted": "AdoptedRemoteJob",
    "updated": "UpdatedRemoteJob",
    "deleted": "DeletedRemoteJob",
    "orphaned": "OrphanedRemoteJob",
    "released": "LeftRemoteJobAlone",
}


@dataclass(frozen=True)
class KubeEvent:
    reason: str
    message: str
    warning: bool = False


def kube_events(
    outcome: Outcome, prior: Mapping[str, Any], status: Mapping[str, Any], *, trigger: Trigger
) -> list[KubeEvent]:
    """The Events of one reconcile: from `outcome`, and `status` (what it leads to) compared
    with `prior`, so that a lasting condition is reported when it starts, not at every look."""
    found: list[KubeEvent] = []
    error = outcome.error
    action = outcome.action
    job_id = remote_id(status)
    if action == "updated" and trigger == "drift":
        what = ", ".join(outcome.drift) or "content"
        found.append(
            KubeEvent("DriftCorrected", f"remote job {job_id} drifted ({what}); corrected", True)
        )
    elif action in _REASONS and not (action == "orphaned" and error is not None):
        message = f"remote job {job_id} {action}".replace("  ", " ")
        if outcome.detail:
            message = f"{message}: {outcome.detail}"
        found.append(KubeEvent(_REASONS[action], message))
    if error is not None:
        if action == "orphaned":
            found.append(
                KubeEvent(
                    "ReleaseFailed",
                    f"orphaned without releasing the ownership mark: {error}",
                    True,
                )
            )
        elif trigger == "delete" and not error.retryable:
            if not _still_blocked(prior, status):
                message = condition_message(status, SYNCED) or str(error)
                found.append(KubeEvent("DeletionBlocked", message, True))
        elif error.code != UNREACHABLE:  # an Event cannot reach an API server that is away
            reason = "RemoteCallFailed" if error.retryable else "TerminalError"
            found.append(KubeEvent(reason, condition_message(status, SYNCED) or str(error), True))
    prior_state = remote_state(prior)
    observed = outcome.observation
    if observed is not None and observed.failed and prior_state != "ERROR":
        found.append(KubeEvent("RemoteJobFailed", condition_message(status, READY) or "", True))
    if outcome.run_started is not None:
        started = outcome.run_started.run_id
        found.append(KubeEvent("RunStarted", f"run {started} of remote job {job_id} started"))
    run = observed.last_run if observed is not None else None
    if (
        run is not None
        and run.status == "failed"
        and last_run_seen(prior) != (run.run_id, "failed")
    ):
        why = f": {run.error}" if run.error else ""
        found.append(KubeEvent("RunFailed", f"run {run.run_id} failed{why}", True))
    progress = observed.progress if observed is not None else None
    if progress is not None and progress.count("ERROR") and not failing_resources(prior):
        first = progress.errors[0] if progress.errors else None
        example = f" {first.resource_type} {first.external_id} {first.code}" if first else ""
        message = f"{progress.count('ERROR')} resource(s) of remote job {job_id} in ERROR, e.g."
        found.append(KubeEvent("SyncResourceErrors", f"{message}{example}".strip(), True))
    vanished = observed is not None and not observed.exists and prior_state not in (None, "ABSENT")
    if action == "recreated" or (vanished and trigger != "delete"):
        then = "; recreated it" if action == "recreated" else ""
        message = f"the remote job was deleted outside the operator{then}"
        found.append(KubeEvent("RemoteJobMissing", message, True))
    return found


def _still_blocked(prior: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """The previous check of this deletion was blocked by the same error. A blocked deletion
    is checked every BLOCKED_DELETION_RECHECK_SECONDS: its Event is posted when the block starts
    or its error changes, not at every check (the conditions always say it)."""
    before, now = condition(prior, TERMINAL), condition(status, TERMINAL)
    return (
        condition_reason(prior, READY) == DELETING
        and before is not None
        and now is not None
        and (before.get("reason"), before.get("message")) == (now.get("reason"), now.get("message"))
    )
