"""converge.remove against a fake provider: what a SyncJob's deletion may do remotely."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from syncjob_operator.converge import CREATE_IN_FLIGHT, converge, remove
from syncjob_operator.model import PendingCreate, SyncJob
from syncjob_operator.ownership import NOT_OWNED
from syncjob_operator.providers.base import ABSENT, Observation, ProviderError
from tests.unit.fakes import CREATED, FINGERPRINT, NEW_ID, FakeProvider, claims_of, context
from tests.unit.jobs import TWINMAKER_JOB, body, orphan

JOB = TWINMAKER_JOB
OWNED = JOB.with_remote_id("id-1")
ACTIVE = Observation(exists=True, remote_id="id-1", state="ACTIVE", ready=True, owner="ns/job")
DELETING = dataclasses.replace(ACTIVE, state="DELETING", settled=False, ready=False)
DENIED = ProviderError("AccessDeniedException", "no UntagResource", retryable=False)


def _pending(age_seconds: float) -> PendingCreate:
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return PendingCreate(
        started_at=started - datetime.timedelta(seconds=age_seconds), content_hash=FINGERPRINT
    )


@pytest.mark.parametrize(
    ("job", "marks_owner", "observed", "fail", "journal", "error"),
    [
        pytest.param(
            orphan(OWNED), True, [ACTIVE], {}, ["observe", "release:id-1"], None,
            id="our-mark-is-released-so-another-syncjob-may-adopt",
        ),
        pytest.param(
            orphan(OWNED), True, [dataclasses.replace(ACTIVE, owner="other/job")], {},
            ["observe"], None,
            id="a-mark-naming-another-syncjob-is-not-ours-to-remove",
        ),
        pytest.param(
            orphan(OWNED), True, [dataclasses.replace(ACTIVE, owner=None)], {}, ["observe"],
            None,
            id="an-unmarked-job-has-nothing-to-release",
        ),
        pytest.param(
            orphan(OWNED), True, [ABSENT], {}, ["observe"], None,
            id="a-vanished-job-has-nothing-to-release",
        ),
        pytest.param(
            orphan(OWNED), True, [ACTIVE], {"release:id-1": DENIED},
            ["observe", "release:id-1"], "AccessDeniedException",
            id="a-failed-release-is-reported-on-the-orphaned-outcome",
        ),
        pytest.param(
            orphan(OWNED), True, [ACTIVE], {"observe": DENIED}, ["observe"],
            "AccessDeniedException",
            id="a-failed-read-is-reported-on-the-orphaned-outcome",
        ),
        pytest.param(
            orphan(OWNED), False, [], {}, [], None,
            id="a-provider-without-marks-needs-no-call",
        ),
        pytest.param(
            orphan(JOB), True, [], {}, [], None,
            id="no-recorded-job-no-call",
        ),
        pytest.param(
            dataclasses.replace(orphan(JOB), pending_create=_pending(5)), True, [ACTIVE], {},
            ["observe", "release:id-1"], None,
            id="an-interrupted-create-may-have-marked-a-named-job-release-it",
        ),
    ],
)  # fmt: skip
async def test_orphan_releases_only_our_own_mark_and_never_blocks(
    job: SyncJob,
    marks_owner: bool,
    observed: list[Observation],
    fail: dict[str, ProviderError],
    journal: list[str],
    error: str | None,
) -> None:
    provider = FakeProvider(observed, fail=fail, marks_owner=marks_owner)
    ctx, _ = context(provider)
    outcome = await remove(job, ctx)
    assert outcome.action == "orphaned"  # whatever happened: deletion goes on
    assert (outcome.error.code if outcome.error else None) == error
    assert provider.journal == journal
    assert not any(call.startswith("delete") for call in provider.journal)


@pytest.mark.parametrize(
    ("observed", "index"),
    [
        pytest.param(
            dataclasses.replace(ACTIVE, owner="other/job"),
            [body(namespace="other", name="job", uid="u2")],
            id="marked-for-another-live-syncjob",
        ),
        pytest.param(
            dataclasses.replace(ACTIVE, owner=None),
            [body(namespace="other", name="job", uid="u2", external_id="id-1", status_id="id-1")],
            id="claimed-by-another-syncjob",
        ),
    ],
)
async def test_a_job_that_is_not_ours_is_released_not_deleted(
    observed: Observation, index: list[dict[str, Any]]
) -> None:
    provider = FakeProvider([observed])
    ctx, _ = context(provider, claims_of(*index))
    outcome = await remove(OWNED, ctx)
    assert (outcome.action, outcome.error, outcome.observation) == ("released", None, None)
    assert outcome.done  # the finalizer may go: nothing of ours is left
    assert "owned by SyncJob other/job" in outcome.detail
    assert provider.journal == ["observe"]


async def test_a_pending_job_that_finds_an_unowned_job_by_name_leaves_it() -> None:
    # An interrupted create whose name was taken by a job nobody owns: not ours to delete.
    job = dataclasses.replace(JOB, pending_create=_pending(600))
    provider = FakeProvider([dataclasses.replace(ACTIVE, owner=None)])
    ctx, _ = context(provider)
    outcome = await remove(job, ctx)
    assert outcome.action == "released"
    assert NOT_OWNED not in outcome.detail  # the detail is the refusal's message, not its code
    assert "no SyncJob owns it" in outcome.detail
    assert provider.journal == ["observe"]


async def test_a_never_created_job_makes_no_remote_call() -> None:
    provider = FakeProvider([])
    ctx, _ = context(provider)
    outcome = await remove(JOB, ctx)
    # The code calls this "released" (nothing of its own to delete), with a reason.
    assert (outcome.action, outcome.error, outcome.done) == ("released", None, True)
    assert outcome.detail == "this SyncJob never created or claimed one"
    assert provider.journal == []


async def test_a_pending_marker_with_a_leftover_deletes_the_leftover() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(5))
    leftover = dataclasses.replace(ACTIVE, remote_id="id-b")
    provider = FakeProvider([ABSENT, leftover, ABSENT], leftovers=[leftover])
    ctx, _ = context(provider)
    outcome = await remove(job, ctx)
    assert (outcome.action, outcome.error) == ("deleted", None)
    assert provider.journal == [
        "observe",
        "find_created",
        "identity:id-b",  # claimed first: no other SyncJob may claim it meanwhile
        "observe",
        "delete:id-b",
        "observe",
    ]


async def test_a_leftover_claimed_by_another_is_not_deleted() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(600))
    leftover = dataclasses.replace(ACTIVE, remote_id="id-b")
    provider = FakeProvider([ABSENT], leftovers=[leftover])
    ctx, _ = context(provider, claims_of(body(name="other", uid="u2", external_id="id-b")))
    outcome = await remove(job, ctx)
    assert (outcome.action, outcome.error) == ("deleted", None)
    assert provider.journal == ["observe", "find_created"]


async def test_a_fresh_marker_without_a_leftover_waits_for_the_create_in_flight() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(5))
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider)
    outcome = await remove(job, ctx)
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == (CREATE_IN_FLIGHT, True)
    assert outcome.action == "none"  # not "deleted": the job may still appear
    assert provider.journal == ["observe", "find_created"]


async def test_an_old_marker_without_a_leftover_is_gone() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(600))
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider)
    outcome = await remove(job, ctx)
    assert (outcome.action, outcome.error, outcome.done) == ("deleted", None, True)


async def test_delete_then_wait_until_gone_and_never_delete_twice() -> None:
    provider = FakeProvider([ACTIVE, DELETING])
    ctx, _ = context(provider)
    outcome = await remove(OWNED, ctx)
    assert (outcome.action, outcome.done) == ("deleting", False)
    assert provider.journal == ["observe", "delete:id-1", "observe"]
    provider = FakeProvider([DELETING, ABSENT])
    ctx, _ = context(provider)
    assert (await remove(OWNED, ctx)).action == "deleting"
    assert provider.journal == ["observe"]  # already DELETING: no second DeleteSyncJob
    outcome = await remove(OWNED, ctx)
    assert (outcome.action, outcome.done) == ("deleted", True)


async def test_an_acknowledged_delete_that_leaves_a_settled_job_is_still_not_done() -> None:
    # TwinMaker may answer the delete and still list the job as ACTIVE for a moment.
    provider = FakeProvider([ACTIVE, ACTIVE])
    ctx, _ = context(provider)
    outcome = await remove(OWNED, ctx)
    assert outcome.action == "deleting"
    assert outcome.observation is not None
    assert (outcome.observation.settled, outcome.observation.ready) == (False, False)
    assert not outcome.done


async def test_a_job_already_gone_counts_as_deleted() -> None:
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider)
    outcome = await remove(OWNED, ctx)
    assert (outcome.action, outcome.done) == ("deleted", True)
    assert provider.journal == ["observe"]


@pytest.mark.parametrize("failing", ["observe", "delete:id-1"])
async def test_delete_errors_come_back_as_values(failing: str) -> None:
    provider = FakeProvider([ACTIVE, ABSENT], fail={failing: DENIED})
    ctx, _ = context(provider)
    outcome = await remove(OWNED, ctx)
    assert outcome.error is DENIED
    assert not outcome.done


async def test_a_body_older_than_a_recreate_deletes_the_recreated_job() -> None:
    provider = FakeProvider([ABSENT, dataclasses.replace(CREATED, settled=True), ABSENT])
    ctx, _ = context(provider)
    assert (await converge(OWNED, ctx)).action == "recreated"  # id-1 absent: id-new created
    await remove(OWNED, ctx)  # the stale body still says id-1; id-new is read, then deleted
    assert f"delete:{NEW_ID}" in provider.journal
