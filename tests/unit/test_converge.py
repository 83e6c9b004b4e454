"""converge.converge against a fake provider: every case says why it exists."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from syncjob_operator.converge import CREATE_IN_FLIGHT, Outcome, converge, follow
from syncjob_operator.model import PendingCreate, SyncJob
from syncjob_operator.ownership import ADOPTION_CONFLICT, NOT_OWNED, OWNED_BY_ANOTHER
from syncjob_operator.providers.base import ABSENT, Observation, ProviderError
from tests.unit.fakes import CREATED, FINGERPRINT, NEW_ID, FakeProvider, claims_of, context
from tests.unit.jobs import TWINMAKER_JOB, body, orphan

JOB = TWINMAKER_JOB  # ns/job, uid u1, never created anything
OWNED = JOB.with_remote_id("id-1")  # its identity recorded (annotation and status)
ADOPTING = dataclasses.replace(JOB, adopt=True)
ACTIVE = Observation(exists=True, remote_id="id-1", state="ACTIVE", ready=True)
DRIFTED = dataclasses.replace(ACTIVE, up_to_date=False, drift=("tag team",))

# Other SyncJobs the claims index can hold.
OTHER_LIVE = body(namespace="other", name="job", uid="u2", created="2025-01-01T00:00:00Z")
OTHER_RECORDED = body(namespace="other", name="job", uid="u2", external_id="id-1", status_id="id-1")
OTHER_UNRECORDED_OLDER = body(
    namespace="other", name="job", uid="u2", external_id="id-1", created="2020-01-01T00:00:00Z"
)
OURS_RECORDED = body(external_id="id-1", status_id="id-1")
OURS_UNRECORDED = body(external_id="id-1")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _pending(age_seconds: float) -> PendingCreate:
    return PendingCreate(
        started_at=_now() - datetime.timedelta(seconds=age_seconds), content_hash=FINGERPRINT
    )


@pytest.mark.parametrize(
    ("job", "observed", "index", "action", "error", "journal"),
    [
        pytest.param(
            OWNED, ACTIVE, [], "none", None, ["observe"],
            id="recorded-identity-in-sync-does-nothing",
        ),
        pytest.param(
            JOB, ACTIVE, [], "none", NOT_OWNED, ["observe"],
            id="existing-job-without-recorded-identity-is-refused",
        ),
        pytest.param(
            ADOPTING, ACTIVE, [], "adopted", None, ["observe", "identity:id-1"],
            id="adopt-annotation-adopts-an-unowned-job-and-records-it",
        ),
        pytest.param(
            ADOPTING, dataclasses.replace(ACTIVE, conflict="syncRole arn:other"), [],
            "none", ADOPTION_CONFLICT, ["observe"],
            id="adopt-refused-when-an-immutable-field-differs",
        ),
        pytest.param(
            JOB, dataclasses.replace(ACTIVE, owner="ns/job"), [], "recovered", None,
            ["observe", "identity:id-1"],
            id="owner-mark-naming-us-is-ours-even-without-recorded-identity",
        ),
        pytest.param(
            ADOPTING, dataclasses.replace(DRIFTED, owner="other/job"), [OTHER_LIVE],
            "none", OWNED_BY_ANOTHER, ["observe"],
            id="owner-mark-naming-another-live-syncjob-is-never-touched-even-if-drifted",
        ),
        pytest.param(
            OWNED, dataclasses.replace(DRIFTED, owner="other/job"), [OTHER_LIVE],
            "none", OWNED_BY_ANOTHER, ["observe"],
            id="our-recorded-id-does-not-beat-another-live-owner-mark",
        ),
        pytest.param(
            ADOPTING, dataclasses.replace(DRIFTED, owner="gone/job"), [],
            "adopted", None, ["observe", "identity:id-1", "update"],
            id="owner-mark-of-a-deleted-syncjob-is-adoptable-when-asked",
        ),
        pytest.param(
            JOB, dataclasses.replace(ACTIVE, owner="gone/job"), [],
            "none", OWNED_BY_ANOTHER, ["observe"],
            id="owner-mark-of-a-deleted-syncjob-is-refused-without-adopt",
        ),
        pytest.param(
            ADOPTING, ACTIVE, [OTHER_RECORDED], "none", OWNED_BY_ANOTHER, ["observe"],
            id="unmarked-job-claimed-by-another-syncjob-is-not-adoptable",
        ),
        pytest.param(
            OWNED, DRIFTED, [OURS_UNRECORDED, OTHER_RECORDED], "none", OWNED_BY_ANOTHER,
            ["observe"],
            id="a-recorded-claim-elsewhere-beats-our-unrecorded-copy",
        ),
        pytest.param(
            OWNED, DRIFTED, [OURS_RECORDED, OTHER_UNRECORDED_OLDER], "updated", None,
            ["observe", "update"],
            id="our-recorded-claim-beats-an-older-unrecorded-copy",
        ),
    ],
)  # fmt: skip
async def test_who_may_act_on_an_existing_remote_job(
    job: SyncJob,
    observed: Observation,
    index: list[dict[str, Any]],
    action: str,
    error: str | None,
    journal: list[str],
) -> None:
    provider = FakeProvider([observed])
    ctx, _ = context(provider, claims_of(*index))
    outcome = await converge(job, ctx)
    assert outcome.action == action
    assert (outcome.error.code if outcome.error else None) == error
    assert provider.journal == journal
    if error is not None:
        assert outcome.error is not None
        assert not outcome.error.retryable  # a refusal waits for the user, not for a retry
        assert outcome.observation is None  # a job that is not ours is not mirrored in status


async def test_an_absent_job_is_created_with_the_marker_before_and_identity_after() -> None:
    provider = FakeProvider([ABSENT])
    ctx, writer = context(provider)
    outcome = await converge(JOB, ctx)
    assert outcome.action == "created"
    assert outcome.observation == CREATED
    assert not outcome.done  # CREATING: the handler keeps polling
    # No leftover search without a marker of an earlier create.
    assert provider.journal == ["observe", "mark", "create", f"identity:{NEW_ID}"]
    [pending] = writer.pending
    assert pending.content_hash == FINGERPRINT
    assert provider.created_for[0].pending_create == pending
    # The create was answered: a later reconcile of this marker must not wait it out.
    assert ctx.answered[JOB.uid] == pending.encode()
    claimant = ctx.claims.owner_of("AWSIoTTwinMaker", NEW_ID)
    assert claimant is not None
    assert claimant.uid == JOB.uid  # the next claim in this scope sees it at once


async def test_a_create_that_lands_on_a_job_owned_by_another_is_refused() -> None:
    # TwinMaker names jobs: a taken name is read, and the job holding it judged by its tag.
    taken = dataclasses.replace(ACTIVE, owner="other/job")
    provider = FakeProvider([ABSENT, taken], name_taken=True, marks_owner=True)
    ctx, _ = context(provider, claims_of(OTHER_LIVE))
    outcome = await converge(JOB, ctx)
    assert outcome.error is not None
    assert outcome.error.code == OWNED_BY_ANOTHER
    # No identity recorded, and the marker of a create that made nothing is dropped.
    assert provider.journal == ["observe", "mark", "create", "unmark", "observe"]


async def test_a_taken_name_held_by_a_job_naming_us_is_recovered() -> None:
    mine = dataclasses.replace(ACTIVE, owner="ns/job")
    provider = FakeProvider([ABSENT, mine], name_taken=True, marks_owner=True)
    ctx, _ = context(provider)
    outcome = await converge(JOB, ctx)
    assert (outcome.action, outcome.error) == ("recovered", None)
    assert provider.journal[-1] == f"identity:{ACTIVE.remote_id}"


async def test_a_named_job_never_recorded_or_sent_is_created_without_a_read_first() -> None:
    provider = FakeProvider(found_by_spec=True, marks_owner=True)
    ctx, _ = context(provider)
    outcome = await converge(JOB, ctx)
    assert (outcome.action, outcome.error) == ("created", None)
    assert provider.journal == ["mark", "create", f"identity:{NEW_ID}"]


async def test_a_named_job_whose_name_an_unowned_job_holds_is_adopted_when_asked() -> None:
    unowned = dataclasses.replace(ACTIVE, owner=None)
    provider = FakeProvider([unowned], name_taken=True, found_by_spec=True, marks_owner=True)
    ctx, _ = context(provider)
    outcome = await converge(dataclasses.replace(JOB, adopt=True), ctx)
    assert (outcome.action, outcome.error) == ("adopted", None)
    assert provider.journal == [
        *("mark", "create", "unmark", "observe"),
        f"identity:{ACTIVE.remote_id}",
    ]


async def test_a_refused_named_job_reads_the_holder_first_the_next_time() -> None:
    taken = dataclasses.replace(ACTIVE, owner="other/job")
    provider = FakeProvider([taken, taken], name_taken=True, found_by_spec=True, marks_owner=True)
    ctx, _ = context(provider, claims_of(OTHER_LIVE))
    first = await converge(JOB, ctx)
    again = await converge(JOB, ctx)
    assert first.error is not None
    assert again.error is not None
    assert first.error.code == again.error.code == OWNED_BY_ANOTHER
    assert provider.calls == ["create", "observe", "observe"]


async def test_a_named_job_with_a_create_marker_is_read_before_any_create() -> None:
    # A create may have landed before a crash: the marker sends it down the read-first path.
    job = dataclasses.replace(JOB, pending_create=_pending(5))
    provider = FakeProvider([ACTIVE], found_by_spec=True, marks_owner=True)
    ctx, _ = context(provider)
    await converge(job, ctx)
    assert provider.calls[0] == "observe"
    assert "create" not in provider.calls


async def test_a_pending_marker_claims_the_oldest_leftover_nobody_else_claimed() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(5))
    leftovers = [
        dataclasses.replace(ACTIVE, remote_id="id-a"),  # claimed by another pending SyncJob
        dataclasses.replace(ACTIVE, remote_id="id-b"),
        dataclasses.replace(ACTIVE, remote_id="id-c"),
    ]
    claimed_by_other = body(namespace="other", name="job", uid="u2", external_id="id-a")
    provider = FakeProvider([ABSENT], leftovers=leftovers)
    ctx, writer = context(provider, claims_of(claimed_by_other))
    outcome = await converge(job, ctx)
    assert outcome.action == "recovered"
    assert outcome.observation is not None
    assert outcome.observation.remote_id == "id-b"
    assert provider.journal == ["observe", "find_created", "identity:id-b"]  # no create
    assert writer.pending == []  # no new marker either
    claimant = ctx.claims.owner_of("AWSIoTTwinMaker", "id-b")
    assert claimant is not None
    assert claimant.uid == JOB.uid


async def test_leftovers_all_claimed_by_others_are_not_taken() -> None:
    # The marker is old: nothing can still land, so a fresh create follows.
    job = dataclasses.replace(JOB, pending_create=_pending(600))
    provider = FakeProvider([ABSENT], leftovers=[dataclasses.replace(ACTIVE, remote_id="id-a")])
    ctx, _ = context(provider, claims_of(body(uid="u2", name="x", external_id="id-a")))
    outcome = await converge(job, ctx)
    assert outcome.action == "created"
    assert provider.journal == ["observe", "find_created", "mark", "create", f"identity:{NEW_ID}"]


async def test_a_fresh_marker_of_a_dead_process_waits_instead_of_creating() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(5))
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider)
    outcome = await converge(job, ctx)
    assert outcome.error is not None
    assert outcome.error.code == CREATE_IN_FLIGHT
    assert outcome.error.retryable
    assert outcome.error.retry_after is not None
    assert 0 < outcome.error.retry_after <= 25 + 1  # what is left of the 30 s window
    assert provider.journal == ["observe", "find_created"]  # neither marker nor create


async def test_an_old_marker_creates_again() -> None:
    job = dataclasses.replace(JOB, pending_create=_pending(120))
    provider = FakeProvider([ABSENT])
    ctx, writer = context(provider)
    outcome = await converge(job, ctx)
    assert outcome.action == "created"
    assert provider.journal == ["observe", "find_created", "mark", "create", f"identity:{NEW_ID}"]
    [pending] = writer.pending
    assert pending != job.pending_create  # a new marker for the new create


async def test_a_create_answered_in_this_process_does_not_wait() -> None:
    pending = _pending(5)
    job = dataclasses.replace(JOB, pending_create=pending)
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider, answered={JOB.uid: pending.encode()})
    outcome = await converge(job, ctx)
    assert (outcome.action, outcome.error) == ("created", None)
    assert "create" in provider.journal


@pytest.mark.parametrize(
    ("answered", "reason"),
    [
        pytest.param(True, "Truto answered 4xx/5xx: nothing is in flight", id="answered"),
        pytest.param(False, "a timeout may still land remotely", id="unanswered"),
    ],
)
async def test_a_failed_create_counts_as_answered_only_when_the_remote_answered(
    answered: bool, reason: str
) -> None:
    error = ProviderError("Timeout", reason, retryable=True, answered=answered)
    provider = FakeProvider([ABSENT], fail={"create": error})
    ctx, writer = context(provider)
    outcome = await converge(JOB, ctx)
    assert outcome.error is error
    [pending] = writer.pending
    assert (ctx.answered.get(JOB.uid) == pending.encode()) is answered


async def test_a_shared_list_that_could_not_judge_is_confirmed_by_a_fresh_read() -> None:
    # TwinMaker's list reads no tags for a job not recorded as ours: up_to_date None.
    unjudged = dataclasses.replace(ACTIVE, up_to_date=None)
    provider = FakeProvider([unjudged, DRIFTED])
    ctx, _ = context(provider)
    outcome = await converge(OWNED, ctx, max_age=30)
    assert provider.calls == ["observe-list", "observe", "update"]
    assert outcome.action == "updated"


async def test_a_shared_list_absence_is_confirmed_before_creating() -> None:
    provider = FakeProvider([ABSENT, ACTIVE])
    ctx, _ = context(provider)
    outcome = await converge(OWNED, ctx, max_age=30)
    assert provider.calls == ["observe-list", "observe"]
    assert outcome.action == "none"


async def test_a_shared_list_that_judged_everything_needs_no_second_read() -> None:
    provider = FakeProvider([ACTIVE])
    ctx, _ = context(provider)
    outcome = await converge(OWNED, ctx, max_age=30)
    assert (provider.calls, outcome.action) == (["observe-list"], "none")


@pytest.mark.parametrize(
    ("observed", "action", "updates"),
    [
        pytest.param(DRIFTED, "updated", 1, id="settled-drift-is-corrected"),
        pytest.param(
            dataclasses.replace(DRIFTED, settled=False), "none", 0, id="not-while-it-moves"
        ),
        pytest.param(
            dataclasses.replace(DRIFTED, failed=True), "none", 0, id="not-while-it-failed"
        ),
        pytest.param(
            dataclasses.replace(ACTIVE, up_to_date=None), "none", 0, id="unjudged-is-not-drift"
        ),
    ],
)
async def test_drift_is_updated_only_on_a_settled_healthy_job(
    observed: Observation, action: str, updates: int
) -> None:
    provider = FakeProvider([observed])
    ctx, _ = context(provider)
    outcome = await converge(OWNED, ctx)
    assert outcome.action == action
    assert provider.calls.count("update") == updates
    assert outcome.drift == (("tag team",) if updates else ())


async def test_an_adopted_drifted_job_is_adopted_and_updated_in_one_pass() -> None:
    provider = FakeProvider([DRIFTED])
    ctx, _ = context(provider)
    outcome = await converge(ADOPTING, ctx)
    assert (outcome.action, outcome.drift) == ("adopted", ("tag team",))
    assert provider.journal == ["observe", "identity:id-1", "update"]


async def test_a_vanished_job_is_recreated_under_delete() -> None:
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider)
    outcome = await converge(OWNED, ctx)
    assert outcome.action == "recreated"
    assert provider.journal == ["observe", "mark", "create", f"identity:{NEW_ID}"]


async def test_a_vanished_job_is_left_alone_under_orphan() -> None:
    provider = FakeProvider([ABSENT])
    ctx, _ = context(provider)
    outcome = await converge(orphan(OWNED), ctx)
    assert (outcome.action, outcome.error, outcome.observation) == ("none", None, ABSENT)
    assert provider.journal == ["observe"]


@pytest.mark.parametrize("failing", ["observe", "create", "find_created"])
async def test_provider_errors_come_back_as_values(failing: str) -> None:
    error = ProviderError("ThrottlingException", "slow", retryable=True)
    job = dataclasses.replace(JOB, pending_create=_pending(600))
    provider = FakeProvider([ABSENT], fail={failing: error})
    ctx, _ = context(provider)
    outcome = await converge(job, ctx)
    assert outcome.error is error
    assert not outcome.done


async def test_a_body_older_than_our_identity_write_neither_creates_nor_misses_the_job() -> None:
    # The first reconcile created id-new; a second handler runs on a body from before that.
    provider = FakeProvider([ABSENT, dataclasses.replace(CREATED, remote_id=NEW_ID)])
    ctx, _ = context(provider)
    await converge(JOB, ctx)
    outcome = await converge(JOB, ctx)
    assert outcome.action == "none"
    assert provider.calls == ["observe", "create", "observe"]


async def test_a_body_older_than_a_recreate_does_not_create_a_second_job() -> None:
    # id-1 vanished and was recreated as id-new; a handler parsed its body before that.
    provider = FakeProvider([ABSENT, CREATED])  # id-1 absent, then id-new read
    ctx, _ = context(provider)
    assert (await converge(OWNED, ctx)).action == "recreated"
    outcome = await converge(OWNED, ctx)  # the stale body still says id-1
    assert provider.calls.count("create") == 1
    assert outcome.action == "none"


async def test_a_name_taken_then_freed_during_create_is_retried_not_judged() -> None:
    # TwinMaker answered ConflictException, and the job holding the name was gone on re-read.
    provider = FakeProvider([ABSENT, ABSENT], name_taken=True)
    ctx, _ = context(provider)
    outcome = await converge(JOB, ctx)
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("CreateConflict", True)


# -- following a job that settles ---------------------------------------------------------

MOVING = Observation(
    exists=True, remote_id="id-1", state="CREATING", settled=False, up_to_date=True, owner="ns/job"
)
LISTED_ACTIVE = Observation(
    exists=True, remote_id="id-1", state="ACTIVE", ready=True, up_to_date=None
)


async def test_following_a_creating_job_reads_its_state_from_the_scope_list_only() -> None:
    provider = FakeProvider([LISTED_ACTIVE])
    ctx, _ = context(provider)
    outcome = await follow(JOB, ctx, Outcome(MOVING, "created"), max_age=1)
    assert provider.calls == ["observe-list-state"]  # state only, from a list: no read of its own
    assert outcome.action == "created"  # the Event still says what happened
    assert outcome.done
    observed = outcome.observation
    assert observed is not None
    # The state is the list's, what only a full read knows (content, owner) is kept.
    assert (observed.state, observed.ready, observed.up_to_date, observed.owner) == (
        "ACTIVE",
        True,
        True,
        "ns/job",
    )


async def test_a_job_gone_while_it_was_created_is_reconciled_in_full() -> None:
    # The full reconcile confirms the absence and creates again, under the guard.
    provider = FakeProvider([ABSENT, ABSENT])
    ctx, _ = context(provider)
    outcome = await follow(OWNED, ctx, Outcome(MOVING, "created"), max_age=1)
    assert provider.calls == ["observe-list-state", "observe", "create"]
    assert outcome.action == "recreated"


@pytest.mark.parametrize(
    ("listed", "action", "done"),
    [
        pytest.param(ABSENT, "deleted", True, id="gone-is-deleted"),
        pytest.param(
            dataclasses.replace(MOVING, state="DELETING"), "deleting", False, id="still-deleting"
        ),
    ],
)  # fmt: skip
async def test_following_a_deletion(listed: Observation, action: str, done: bool) -> None:
    provider = FakeProvider([listed])
    ctx, _ = context(provider)
    deleting = dataclasses.replace(MOVING, state="DELETING")
    outcome = await follow(OWNED, ctx, Outcome(deleting, "deleting"), max_age=1)
    assert (outcome.action, outcome.done) == (action, done)
    assert provider.calls == ["observe-list-state"]


async def test_a_failed_state_read_while_following_is_an_error_on_the_known_job() -> None:
    throttled = ProviderError("ThrottlingException", "slow down", retryable=True)
    provider = FakeProvider([], fail={"observe-list-state": throttled})
    ctx, _ = context(provider)
    outcome = await follow(JOB, ctx, Outcome(MOVING, "created"), max_age=1)
    assert outcome.error is throttled
    assert outcome.observation == MOVING
