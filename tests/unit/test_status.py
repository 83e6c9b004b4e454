"""compute_status is a pure function: a table of outcomes and the conditions each must yield."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from syncjob_operator.converge import Outcome
from syncjob_operator.model import PendingCreate, RunMark, SyncJob, SyncJobSpec
from syncjob_operator.ownership import ADOPTION_CONFLICT, NOT_OWNED, OWNED_BY_ANOTHER, REFUSALS
from syncjob_operator.providers.base import ABSENT, Observation, ProviderError
from syncjob_operator.status import (
    OWNED_KEYS,
    READY,
    SYNCED,
    TERMINAL,
    TerminalRecord,
    compute_status,
    condition,
    condition_message,
    condition_reason,
    condition_status,
    converged,
    status_patch,
)
from tests.unit.jobs import ACTIVE, CREATING, FAILED, NOW, TRUTO_JOB, TRUTO_SPEC, TWINMAKER_JOB

JOB = TWINMAKER_JOB
THROTTLED = ProviderError(
    "ThrottlingException", "slow down", retryable=True, operation="GetSyncJob"
)
DENIED = ProviderError("AccessDeniedException", "no", retryable=False, operation="CreateSyncJob")
RECORD = TerminalRecord(inputs="h1", checks=2, next_check=NOW + datetime.timedelta(minutes=10))


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
        pytest.param(
            Outcome(None, "released", detail="not ours"),
            {"Ready": ("Unknown", "Unobserved"), "Synced": ("True", "ReconcileSuccess")},
            id="released-reads-nothing",
        ),
    ],
)
def test_conditions_follow_the_outcome(
    outcome: Outcome, expected: dict[str, tuple[str, str]]
) -> None:
    status = compute_status(JOB, outcome, {}, NOW, terminal=RECORD)
    assert _conditions(status) == expected
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["observedGeneration"] == 3
    assert status["provider"] == "AWSIoTTwinMaker"
    # The terminal record is kept only for terminal errors: it is what stops retry storms.
    terminal = "Terminal" in expected
    assert ("failedInputs" in status, "terminalChecks" in status) == (terminal, terminal)
    assert ("nextCheckTime" in status) == terminal


@pytest.mark.parametrize("code", sorted(REFUSALS))
def test_a_refusal_makes_ready_false_with_its_code_even_after_ready_true(code: str) -> None:
    prior = compute_status(JOB, Outcome(ACTIVE), {}, NOW)  # Ready True before
    refusal = ProviderError(code, f"remote job arn:x: {code}", retryable=False)
    status = compute_status(JOB, Outcome(None, error=refusal), prior, NOW, terminal=RECORD)
    assert (condition_status(status, READY), condition_reason(status, READY)) == ("False", code)
    assert condition_message(status, READY) == f"remote job arn:x: {code}"
    assert condition_reason(status, TERMINAL) == code  # waits for the user, not for a retry
    assert status["remote"] == prior["remote"]  # the refused job is not mirrored


def test_refusal_codes_are_the_three_ownership_refusals() -> None:
    assert {OWNED_BY_ANOTHER, NOT_OWNED, ADOPTION_CONFLICT} == REFUSALS


def test_a_terminal_error_names_the_next_check_time() -> None:
    status = compute_status(JOB, Outcome(None, error=DENIED), {}, NOW, terminal=RECORD)
    assert condition_message(status, SYNCED) == (
        "CreateSyncJob: AccessDeniedException: no (will check again at 2026-11-23T12:10:00Z,"
        " or at once when the spec or its Secret changes)"
    )
    assert (status["failedInputs"], status["terminalChecks"], status["nextCheckTime"]) == (
        "h1",
        2,
        "2026-11-23T12:10:00Z",
    )


def test_a_terminal_error_without_a_record_says_later() -> None:
    status = compute_status(JOB, Outcome(None, error=DENIED), {}, NOW)
    assert "will check again later" in (condition_message(status, SYNCED) or "")
    assert not {"failedInputs", "terminalChecks", "nextCheckTime"} & status.keys()


def test_a_retryable_error_says_it_will_retry_and_keeps_no_record() -> None:
    status = compute_status(JOB, Outcome(None, error=THROTTLED), {}, NOW, terminal=RECORD)
    assert (
        condition_message(status, SYNCED)
        == "GetSyncJob: ThrottlingException: slow down (will retry)"
    )
    assert condition(status, TERMINAL) is None
    assert not {"failedInputs", "terminalChecks", "nextCheckTime"} & status.keys()


@pytest.mark.parametrize(
    ("status", "kind", "found"),
    [
        pytest.param({}, READY, None, id="no-conditions"),
        pytest.param({"conditions": None}, READY, None, id="null-conditions"),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True", "reason": "R", "message": "m"}]},
            READY,
            ("True", "R", "m"),
            id="found",
        ),
        pytest.param(
            {"conditions": [{"type": "Synced", "status": "True", "reason": "R", "message": "m"}]},
            READY,
            None,
            id="other-type",
        ),
    ],
)
def test_condition_accessors(
    status: dict[str, Any], kind: str, found: tuple[str, str, str] | None
) -> None:
    got = (condition_status(status, kind), condition_reason(status, kind))
    got_message = condition_message(status, kind)
    if found is None:
        assert (condition(status, kind), got, got_message) == (None, (None, None), None)
    else:
        assert (*got, got_message) == found


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
        schedule_id="tr-1",
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
        "scheduleId": "tr-1",
    }
    assert "lastObservedTime" not in status  # no heartbeat: status changes only with its content


def test_an_unreadable_remote_keeps_the_last_known_remote_and_ready() -> None:
    prior = compute_status(JOB, Outcome(ACTIVE), {}, NOW)
    later = NOW + datetime.timedelta(minutes=5)
    status = compute_status(JOB, Outcome(None, error=THROTTLED), prior, later)
    assert status["remote"] == prior["remote"]
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


def test_status_patch_clears_owned_keys_that_disappear() -> None:
    prior = {
        **compute_status(JOB, Outcome(None, error=DENIED), {}, NOW, terminal=RECORD),
        "remote": {"id": "arn:x", "state": "ERROR", "errorCode": "E"},
    }
    new = compute_status(JOB, Outcome(ACTIVE), prior, NOW)
    patch = status_patch(new, prior)
    assert (patch["failedInputs"], patch["terminalChecks"], patch["nextCheckTime"]) == (
        None,
        None,
        None,
    )
    assert patch["remote"]["errorCode"] is None
    assert patch["remote"]["state"] == "ACTIVE"
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "Synced"]  # Terminal dropped


def test_status_patch_leaves_keys_it_does_not_own() -> None:
    # status.pendingCreate (written by versions before the annotation marker) is not in the
    # CRD any more: the API server prunes it, so this module no longer owns or clears it.
    assert "pendingCreate" not in OWNED_KEYS
    prior = {
        **compute_status(JOB, Outcome(ACTIVE), {}, NOW),
        "pendingCreate": {"startedAt": "2026-11-23T11:59:59Z"},
    }
    patch = status_patch(compute_status(JOB, Outcome(ACTIVE), prior, NOW), prior)
    assert "pendingCreate" not in patch
    assert set(patch) <= set(OWNED_KEYS)


def test_an_unchanged_status_is_not_written_again() -> None:
    # The same observation minutes later: no heartbeat, nothing to write.
    prior = compute_status(JOB, Outcome(ACTIVE), {}, NOW)
    later = NOW + datetime.timedelta(minutes=10)
    assert status_patch(compute_status(JOB, Outcome(ACTIVE), prior, later), prior) == {}


def _recorded(job: SyncJob) -> SyncJob:
    return job.with_remote_id("id-1")


READY_STATUS = compute_status(
    _recorded(JOB), Outcome(dataclasses.replace(ACTIVE, remote_id="id-1")), {}, NOW
)
REQUESTED_RUN = SyncJobSpec.model_validate(
    {"truto": {**TRUTO_SPEC["truto"], "run": {"requestId": "r1", "integratedAccountId": "a"}}}
)


@pytest.mark.parametrize(
    ("job", "status", "expected"),
    [
        pytest.param(_recorded(JOB), READY_STATUS, True, id="ready-synced-recorded"),
        pytest.param(JOB, READY_STATUS, False, id="identity-not-recorded"),
        pytest.param(
            dataclasses.replace(_recorded(JOB), generation=4), READY_STATUS, False,
            id="a-spec-change-not-handled",
        ),
        pytest.param(
            dataclasses.replace(_recorded(JOB), pending_create=PendingCreate(NOW, "h")),
            READY_STATUS, False, id="a-create-in-flight",
        ),
        pytest.param(
            _recorded(JOB), compute_status(_recorded(JOB), Outcome(CREATING), {}, NOW), False,
            id="still-creating",
        ),
        pytest.param(
            _recorded(JOB), compute_status(_recorded(JOB), Outcome(None, error=THROTTLED), {}, NOW),
            False, id="last-reconcile-failed",
        ),
        pytest.param(
            dataclasses.replace(_recorded(TRUTO_JOB), spec=REQUESTED_RUN), READY_STATUS, False,
            id="a-requested-run-not-started",
        ),
        pytest.param(
            dataclasses.replace(
                _recorded(TRUTO_JOB), spec=REQUESTED_RUN, run_mark=RunMark("r1", run_id="x")
            ),
            READY_STATUS, True, id="the-requested-run-started",
        ),
        pytest.param(
            dataclasses.replace(
                _recorded(TRUTO_JOB), spec=REQUESTED_RUN, run_mark=RunMark("r1", since=NOW)
            ),
            READY_STATUS, False, id="the-requested-run-may-be-starting",
        ),
    ],
)  # fmt: skip
def test_converged_means_nothing_left_but_drift(
    job: SyncJob, status: dict[str, Any], expected: bool
) -> None:
    assert converged(job, status) is expected
