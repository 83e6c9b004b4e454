"""compute_status is a pure function: a table of outcomes and the conditions each must yield."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from syncjob_operator.providers.base import ABSENT, Observation, ProviderError
from syncjob_operator.reconcile import Outcome
from syncjob_operator.status import compute_status, status_patch
from tests.unit.jobs import TWINMAKER_JOB

NOW = datetime.datetime(2026, 11, 23, 12, 0, tzinfo=datetime.UTC)
JOB = TWINMAKER_JOB
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
THROTTLED = ProviderError(
    "ThrottlingException", "slow down", retryable=True, operation="GetSyncJob"
)
DENIED = ProviderError("AccessDeniedException", "no", retryable=False, operation="CreateSyncJob")


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        pytest.param(
            Outcome(ACTIVE, "created"),
            {"Ready": ("True", "Available"), "Synced": ("True", "ReconcileSuccess")},
            id="active",
        ),
        pytest.param(
            Outcome(CREATING, "created"),
            {"Ready": ("False", "Creating"), "Synced": ("True", "ReconcileSuccess")},
            id="still-creating",
        ),
        pytest.param(
            Outcome(FAILED),
            {"Ready": ("False", "RemoteError"), "Synced": ("True", "ReconcileSuccess")},
            id="remote-error-is-not-ours",
        ),
        pytest.param(
            Outcome(ABSENT),
            {"Ready": ("False", "RemoteAbsent"), "Synced": ("True", "ReconcileSuccess")},
            id="absent",
        ),
        pytest.param(
            Outcome(None, error=THROTTLED),
            {"Ready": ("Unknown", "Unobserved"), "Synced": ("False", "ReconcileError")},
            id="retryable-before-any-read",
        ),
        pytest.param(
            Outcome(None, error=DENIED),
            {
                "Ready": ("Unknown", "Unobserved"),
                "Synced": ("False", "ReconcileError"),
                "Terminal": ("True", "AccessDeniedException"),
            },
            id="terminal-adds-marker",
        ),
        pytest.param(
            Outcome(ABSENT, "deleted"),
            {"Ready": ("False", "Deleting"), "Synced": ("True", "ReconcileSuccess")},
            id="deleted",
        ),
    ],
)
def test_conditions_follow_the_outcome(
    outcome: Outcome, expected: dict[str, tuple[str, str]]
) -> None:
    status = compute_status(JOB, outcome, {}, NOW, failed_inputs="h1")
    assert _conditions(status) == expected
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["observedGeneration"] == 3
    assert status["provider"] == "AWSIoTTwinMaker"
    # failedInputs is recorded only for terminal errors: it is what stops retry storms.
    assert ("failedInputs" in status) == ("Terminal" in expected)


def test_remote_fields_are_mirrored_with_rfc3339_times() -> None:
    observed = Observation(
        exists=True,
        remote_id="arn:x",
        state="ERROR",
        failed=True,
        error_code="E",
        error_message="m",
        created_at=datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC),
        updated_at=datetime.datetime(2026, 1, 2, 3, 4, 6),
    )
    status = compute_status(JOB, Outcome(observed), {}, NOW)
    assert status["remote"] == {
        "id": "arn:x",
        "state": "ERROR",
        "upToDate": True,
        "errorCode": "E",
        "errorMessage": "m",
        "createdAt": "2026-01-02T03:04:05Z",
        "updatedAt": "2026-01-02T03:04:06Z",
    }
    assert status["lastObservedTime"] == "2026-11-23T12:00:00Z"


def test_an_unreadable_remote_keeps_the_last_known_remote_and_ready() -> None:
    prior = compute_status(JOB, Outcome(ACTIVE), {}, NOW)
    later = NOW + datetime.timedelta(minutes=5)
    status = compute_status(JOB, Outcome(None, error=THROTTLED), prior, later)
    assert status["remote"] == prior["remote"]
    assert status["lastObservedTime"] == prior["lastObservedTime"]
    assert _conditions(status)["Ready"] == ("True", "Available")


def test_last_transition_time_moves_only_when_the_status_flips() -> None:
    first = compute_status(JOB, Outcome(CREATING), {}, NOW)
    later = NOW + datetime.timedelta(seconds=30)
    second = compute_status(JOB, Outcome(ACTIVE), first, later)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times == {"Ready": "2026-11-23T12:00:30Z", "Synced": "2026-11-23T12:00:00Z"}


def test_vanished_job_keeps_its_id_for_the_user() -> None:
    prior = compute_status(JOB, Outcome(ACTIVE), {}, NOW)
    status = compute_status(JOB, Outcome(ABSENT), prior, NOW)
    assert status["remote"] == {"id": "arn:x", "state": "ABSENT"}


def test_status_patch_clears_owned_keys_that_disappear_and_leaves_pending_create() -> None:
    prior = {
        **compute_status(JOB, Outcome(None, error=DENIED), {}, NOW, failed_inputs="h"),
        "remote": {"id": "arn:x", "state": "ERROR", "errorCode": "E"},
        "pendingCreate": {"startedAt": "2026-11-23T11:59:59Z"},
    }
    new = compute_status(JOB, Outcome(ACTIVE), prior, NOW)
    patch = status_patch(new, prior)
    assert patch["failedInputs"] is None
    assert patch["remote"]["errorCode"] is None
    assert patch["remote"]["state"] == "ACTIVE"
    assert "pendingCreate" not in patch
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "Synced"]  # Terminal dropped
