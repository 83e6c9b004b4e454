"""The Kubernetes Events of one reconcile, from its typed outcome and the status before and
after."""

from __future__ import annotations

from typing import Any

import pytest

from syncjob_operator.converge import Outcome
from syncjob_operator.kube_events import kube_events
from syncjob_operator.ownership import OWNED_BY_ANOTHER
from syncjob_operator.providers.base import ABSENT, ProviderError
from syncjob_operator.status import compute_status
from tests.unit.jobs import ACTIVE, CREATING, FAILED, NOW, TWINMAKER_JOB

JOB = TWINMAKER_JOB
DENIED = ProviderError("AccessDeniedException", "no", retryable=False, operation="CreateSyncJob")
THROTTLED = ProviderError("ThrottlingException", "slow", retryable=True, operation="GetSyncJob")

PRIOR_ACTIVE = compute_status(JOB, Outcome(ACTIVE), {}, NOW)
PRIOR_ERROR = compute_status(JOB, Outcome(FAILED), {}, NOW)
REFUSED = ProviderError(
    OWNED_BY_ANOTHER, "remote job arn:x is owned by SyncJob other/job", retryable=False
)


@pytest.mark.parametrize(
    ("outcome", "prior", "trigger", "expected"),
    [
        pytest.param(
            Outcome(ACTIVE, "updated", drift=("tag extra", "tag team")), PRIOR_ACTIVE, "drift",
            [("DriftCorrected", True, "remote job arn:x drifted (tag extra, tag team); corrected")],
            id="drift-found-by-the-drift-pass-is-a-warning-naming-the-fields",
        ),
        pytest.param(
            Outcome(ACTIVE, "updated"), PRIOR_ACTIVE, "drift",
            [("DriftCorrected", True, "remote job arn:x drifted (content); corrected")],
            id="drift-without-names-still-says-what",
        ),
        pytest.param(
            Outcome(ACTIVE, "updated", drift=("resources",)), PRIOR_ACTIVE, "change",
            [("UpdatedRemoteJob", False, "remote job arn:x updated")],
            id="a-spec-update-is-normal",
        ),
        pytest.param(
            Outcome(None, "released", detail="remote job arn:x is owned by SyncJob other/job"),
            PRIOR_ACTIVE, "delete",
            [(
                "LeftRemoteJobAlone", False,
                "remote job arn:x released: remote job arn:x is owned by SyncJob other/job",
            )],
            id="released-says-why",
        ),
        pytest.param(
            Outcome(None, "released", detail="this SyncJob never created or claimed one"),
            {}, "delete",
            [(
                "LeftRemoteJobAlone", False,
                "remote job released: this SyncJob never created or claimed one",
            )],
            id="released-without-an-id-reads-well",
        ),
        pytest.param(
            Outcome(None, "orphaned", error=DENIED), PRIOR_ACTIVE, "delete",
            [(
                "ReleaseFailed", True,
                "orphaned without releasing the ownership mark: AccessDeniedException: no",
            )],
            id="a-failed-release-is-a-warning-and-not-also-a-normal-orphaned",
        ),
        pytest.param(
            Outcome(None, "orphaned"), PRIOR_ACTIVE, "delete",
            [("OrphanedRemoteJob", False, "remote job arn:x orphaned")],
            id="orphaned",
        ),
        pytest.param(
            Outcome(CREATING, "recreated"), PRIOR_ACTIVE, "drift",
            [
                ("RecreatedRemoteJob", False, "remote job arn:x recreated"),
                ("RemoteJobMissing", True,
                 "the remote job was deleted outside the operator; recreated it"),
            ],
            id="recreated-is-also-a-missing-warning",
        ),
        pytest.param(
            Outcome(ABSENT), PRIOR_ACTIVE, "drift",
            [("RemoteJobMissing", True, "the remote job was deleted outside the operator")],
            id="vanished-under-orphan-is-reported-once",
        ),
        pytest.param(
            Outcome(ABSENT), compute_status(JOB, Outcome(ABSENT), PRIOR_ACTIVE, NOW), "drift",
            [], id="still-absent-is-not-reported-again",
        ),
        pytest.param(
            Outcome(ABSENT, "deleted"), PRIOR_ACTIVE, "delete",
            [("DeletedRemoteJob", False, "remote job arn:x deleted")],
            id="gone-during-delete-is-not-missing",
        ),
        pytest.param(
            Outcome(FAILED), PRIOR_ACTIVE, "drift",
            [("RemoteJobFailed", True, "SYNC_CREATING_ERROR: boom")],
            id="remote-error-the-first-time",
        ),
        pytest.param(Outcome(FAILED), PRIOR_ERROR, "drift", [], id="remote-error-only-once"),
        pytest.param(
            Outcome(None, error=THROTTLED), PRIOR_ACTIVE, "change",
            [("RemoteCallFailed", True,
              "GetSyncJob: ThrottlingException: slow (will retry)")],
            id="retryable-error-carries-the-synced-message",
        ),
        pytest.param(
            Outcome(None, error=REFUSED), PRIOR_ACTIVE, "change",
            [("TerminalError", True,
              "OwnedByAnother: remote job arn:x is owned by SyncJob other/job (will check"
              " again later, or at once when the spec or its Secret changes)")],
            id="a-refusal-is-a-terminal-warning",
        ),
        pytest.param(Outcome(ACTIVE), PRIOR_ACTIVE, "drift", [], id="nothing-happened"),
        pytest.param(
            Outcome(CREATING, "created"), {}, "change",
            [("CreatedRemoteJob", False, "remote job arn:x created")], id="created",
        ),
        pytest.param(
            Outcome(ACTIVE, "recovered"), {}, "change",
            [("RecoveredRemoteJob", False, "remote job arn:x recovered")],
            id="recovered-after-an-interrupted-create",
        ),
        pytest.param(
            Outcome(ACTIVE, "adopted"), {}, "change",
            [("AdoptedRemoteJob", False, "remote job arn:x adopted")], id="adopted",
        ),
    ],
)  # fmt: skip
def test_kube_events(
    outcome: Outcome,
    prior: dict[str, Any],
    trigger: Any,
    expected: list[tuple[str, bool, str]],
) -> None:
    status = compute_status(JOB, outcome, prior, NOW)
    found = kube_events(outcome, prior, status, trigger=trigger)
    assert [(e.reason, e.warning, e.message) for e in found] == expected
