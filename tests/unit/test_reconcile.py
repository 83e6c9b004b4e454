"""The one reconcile through kopf's callbacks and the drift pass: terminal re-check timing, the
guards in front of a reconcile, retries as kopf's signals, with a fake provider behind a real
Reconciler and kopf's own Body and Patch types."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
import time
from typing import Any, cast

import kopf
import pytest

from syncjob_operator.converge import Outcome
from syncjob_operator.kopf_edge.handlers import KopfHandlers
from syncjob_operator.kopf_edge.settings import (
    APPLY_PROGRESS,
    LAST_HANDLED,
    OVERDUE_RETRY_SECONDS,
    STATUS_IN_FLIGHT_SECONDS,
)
from syncjob_operator.metrics import OBJECT_STATES
from syncjob_operator.model import (
    CREATE_PENDING_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    SyncJob,
    may_hold_remote_job,
)
from syncjob_operator.ownership import NOT_OWNED
from syncjob_operator.providers.base import ABSENT, ProviderError
from syncjob_operator.reconcile import Timing, inputs_hash, terminal_check_due, terminal_record
from syncjob_operator.status import (
    TerminalRecord,
    compute_status,
    condition,
    condition_reason,
)
from tests.unit.fakes import (
    FakeProvider,
    FakeSecrets,
    RecordingStatusWriter,
    handlers_for,
)
from tests.unit.jobs import (
    ACTIVE,
    CREATING,
    NOW,
    TRUTO_SPEC,
    TWINMAKER_JOB,
    TWINMAKER_SPEC,
    body,
    orphan,
)

JOB = TWINMAKER_JOB
DENIED = ProviderError("AccessDeniedException", "no", retryable=False, operation="CreateSyncJob")
THROTTLED = ProviderError("ThrottlingException", "slow", retryable=True, operation="GetSyncJob")
# settle_seconds=0: a handler hands a moving job to kopf's retry at once (no sleeping here).
TIMING = Timing(terminal_recheck_seconds=10, terminal_recheck_cap_seconds=35, settle_seconds=0)
LOGGER = logging.getLogger("tests.unit.reconcile")


def _terminal_status(prior: dict[str, Any], record: TerminalRecord) -> dict[str, Any]:
    return compute_status(JOB, Outcome(None, error=DENIED), prior, NOW, terminal=record)


# --- terminal re-checks ---------------------------------------------------------------------


def test_terminal_checks_double_per_unchanged_check_up_to_the_cap() -> None:
    prior: dict[str, Any] = {}
    seen: list[tuple[int, float]] = []
    for _ in range(5):
        record = terminal_record(prior, "h1", NOW, TIMING)
        seen.append((record.checks, (record.next_check - NOW).total_seconds()))
        prior = _terminal_status(prior, record)
    assert seen == [(1, 10), (2, 20), (3, 35), (4, 35), (5, 35)]


@pytest.mark.parametrize(
    ("prior", "reason"),
    [
        pytest.param(
            {"failedInputs": "h1", "terminalChecks": 4},
            "no Terminal condition: the record is not about a terminal error any more",
            id="no-terminal-condition",
        ),
        pytest.param({}, "nothing on record", id="first-failure"),
    ],
)
def test_terminal_checks_start_over_without_a_terminal_on_record(
    prior: dict[str, Any], reason: str
) -> None:
    record = terminal_record(prior, "h1", NOW, TIMING)
    assert (record.checks, record.next_check) == (1, NOW + datetime.timedelta(seconds=10)), reason


def test_terminal_checks_reset_when_the_inputs_change() -> None:
    prior = _terminal_status({}, TerminalRecord("h1", 3, NOW))
    record = terminal_record(prior, "h2", NOW, TIMING)
    assert record == TerminalRecord("h2", 1, NOW + datetime.timedelta(seconds=10))
    assert terminal_record(prior, "h1", NOW, TIMING).checks == 4  # the same inputs go on


@pytest.mark.parametrize(
    ("next_check", "due"),
    [
        pytest.param(None, True, id="nothing-scheduled"),
        pytest.param("2026-11-23T11:59:59Z", True, id="past"),
        pytest.param("2026-11-23T12:00:00Z", True, id="exactly-now"),
        pytest.param("2026-11-23T12:00:01Z", False, id="future"),
        pytest.param("2026-11-23T13:00:01+01:00", False, id="future-in-another-zone"),
    ],
)
def test_terminal_check_due(next_check: str | None, due: bool) -> None:
    prior = {} if next_check is None else {"nextCheckTime": next_check}
    assert terminal_check_due(prior, NOW) is due


async def test_inputs_hash_changes_with_spec_annotations_and_secret_versions() -> None:
    truto = dataclasses.replace(JOB, spec=SyncJob.from_body(body(spec=TRUTO_SPEC)).spec)
    secrets = FakeSecrets({("ns", "truto-token"): ({"token": "t"}, "v1")})
    base = await inputs_hash(truto, secrets)
    assert await inputs_hash(truto, secrets) == base  # stable
    assert await inputs_hash(dataclasses.replace(truto, adopt=True), secrets) != base
    assert await inputs_hash(dataclasses.replace(truto, external_id="t-1"), secrets) != base
    assert await inputs_hash(JOB, secrets) != base  # another spec
    rotated = FakeSecrets({("ns", "truto-token"): ({"token": "t2"}, "v2")})
    assert await inputs_hash(truto, rotated) != base
    missing = await inputs_hash(truto, FakeSecrets())  # SecretNotFound is an input too
    assert missing not in (base, await inputs_hash(truto, rotated))


# --- the kopf callbacks and the drift pass over one Reconciler ------------------------------


@dataclasses.dataclass
class Posted:
    events: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)

    def event(self, obj: Any, *, type: str, reason: str, message: str = "") -> None:
        self.events.append((type, reason, message))

    def warn(self, obj: Any, *, reason: str, message: str = "") -> None:
        self.events.append(("Warning", reason, message))


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> Posted:
    recorder = Posted()
    monkeypatch.setattr("syncjob_operator.kopf_edge.handlers.kopf.event", recorder.event)
    monkeypatch.setattr("syncjob_operator.kopf_edge.handlers.kopf.warn", recorder.warn)
    return recorder


def _body(one: dict[str, Any]) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, one))


def _handlers(
    provider: FakeProvider, secrets: FakeSecrets | None = None, timing: Timing = TIMING
) -> KopfHandlers:
    return handlers_for(provider, secrets, timing)


OWNED_ACTIVE = dataclasses.replace(ACTIVE, remote_id="id-1")
SYNCED = compute_status(JOB.with_remote_id("id-1"), Outcome(OWNED_ACTIVE), {}, NOW)
RETRYING = compute_status(JOB, Outcome(None, error=THROTTLED), {}, NOW)
STILL_CREATING = compute_status(JOB, Outcome(CREATING, "created"), {}, NOW)


# kopf's diff-base: the object's creation was handled (a restored object carries it too).
HANDLED = {LAST_HANDLED: "{}"}
RETRYING_NOW = {**HANDLED, APPLY_PROGRESS: "{}"}  # kopf's progress: a handler retries or polls


def _retry_due(seconds_from_now: float) -> dict[str, str]:
    """kopf's progress of a change handler that failed once, retried at the given time."""
    now = datetime.datetime.now(datetime.UTC)
    state = {
        "started": (now - datetime.timedelta(hours=2)).isoformat(),
        "delayed": (now + datetime.timedelta(seconds=seconds_from_now)).isoformat(),
        "purpose": "create",
        "retries": 1,
        "success": False,
        "failure": False,
    }
    return {**HANDLED, APPLY_PROGRESS: json.dumps(state)}


@pytest.mark.parametrize(
    ("one", "reconciles"),
    [
        pytest.param(
            body(external_id="id-1", status=SYNCED, deleting=True, annotations=HANDLED), False,
            id="deleting-belongs-to-the-delete-handler",
        ),
        pytest.param(
            body(external_id="id-1", status=SYNCED, annotations=RETRYING_NOW), False,
            id="kopf-progress-means-the-change-handler-retries-or-polls",
        ),
        pytest.param(
            body(
                external_id="id-1", status={**SYNCED, "observedGeneration": 2}, annotations=HANDLED
            ), False,
            id="generation-mismatch-a-spec-change-is-being-handled",
        ),
        pytest.param(
            body(external_id="id-1", status=RETRYING, annotations=RETRYING_NOW),
            False, id="synced-false-while-the-change-handler-backs-off",
        ),
        pytest.param(
            body(external_id="id-1", status=STILL_CREATING, annotations=RETRYING_NOW),
            False, id="ready-creating-while-the-change-handler-polls",
        ),
        pytest.param(
            body(external_id="id-1", status=SYNCED, annotations=HANDLED), True,
            id="settled-and-in-step",
        ),
        pytest.param(
            body(), False, id="never-handled-by-kopf-its-create-handler-owns-it",
        ),
        pytest.param(
            body(external_id="id-1", annotations=HANDLED), False,
            id="handled-without-status-kopfs-status-write-is-in-flight",
        ),
        pytest.param(
            body(external_id="id-1", status=RETRYING, annotations=HANDLED), True,
            id="synced-false-left-without-kopf-progress-is-not-stuck",
        ),
        pytest.param(
            body(external_id="id-1", status=STILL_CREATING, annotations=HANDLED), True,
            id="ready-creating-left-without-kopf-progress-is-not-stuck",
        ),
    ],
)  # fmt: skip
async def test_drift_pass_guards(one: dict[str, Any], reconciles: bool, posted: Posted) -> None:
    provider = FakeProvider([OWNED_ACTIVE])
    handlers = _handlers(provider)
    await _drift_pass(handlers, one)
    writes = cast(RecordingStatusWriter, handlers.writer).writes
    if reconciles:
        assert provider.calls == ["observe-list"]
        status = one.get("status") or {}
        if status != SYNCED:  # what the read found differs from the status: written once
            assert [name for name, _ in writes] == ["job"]
            assert writes[0][1]["remote"]["id"] == "id-1"
    else:
        assert provider.calls == []
        assert posted.events == []
    if not reconciles or one.get("status") == SYNCED:
        assert writes == []  # nothing changed: nothing written
    assert cast(RecordingStatusWriter, handlers.writer).annotated == []


@pytest.mark.parametrize(
    ("due_in", "taken_over"),
    [
        pytest.param(-60.0, False, id="a-retry-kopf-runs-late-under-load-is-still-kopfs"),
        # kopf re-ran a handled creation from a stale watch event and the re-run failed: the
        # newer event shows the creation handled, so kopf never runs the retry it recorded.
        pytest.param(
            -OVERDUE_RETRY_SECONDS - 1, True,
            id="a-retry-kopf-will-never-run-is-taken-over-and-cleared",
        ),
    ],
)  # fmt: skip
async def test_drift_pass_and_kopf_retries(due_in: float, taken_over: bool, posted: Posted) -> None:
    provider = FakeProvider([OWNED_ACTIVE])
    handlers = _handlers(provider)
    one = body(external_id="id-1", status=RETRYING, annotations=_retry_due(due_in))
    await _drift_pass(handlers, one)
    writer = cast(RecordingStatusWriter, handlers.writer)
    if taken_over:
        assert provider.calls == ["observe-list"]
        assert [name for name, _ in writer.writes] == ["job"]
        assert writer.annotated == [("job", {APPLY_PROGRESS: None})]
    else:
        assert (provider.calls, writer.writes, writer.annotated) == ([], [], [])


async def test_a_drift_pass_never_acts_on_a_syncjob_deleted_since_it_began(
    posted: Posted,
) -> None:
    """A SyncJob deleted (its delete handler done, its Secrets released) after the pass took
    it must not be reconciled from the stale member: that would look for its remote job again
    and put the hold back on its Secrets, with no SyncJob left to release it."""
    provider = FakeProvider([])  # any remote call fails the test
    secrets = FakeSecrets()
    handlers = _handlers(provider, secrets)
    live = body(external_id="id-1", status=SYNCED, annotations=HANDLED)
    handlers.on_watch_event("MODIFIED", _body(live))
    [taken_by_the_pass] = list(handlers.reconciler.due_members())
    deleting = body(external_id="id-1", status=SYNCED, annotations=HANDLED, deleting=True)
    handlers.on_watch_event("MODIFIED", _body(deleting))
    handlers.reconciler.answered["u1"] = "its create marker"  # its create was answered here
    handlers.reconciler.finished.add("u1")  # what the delete handler records as it finishes
    handlers.on_watch_event("DELETED", _body(deleting))

    await handlers.drift_check(taken_by_the_pass)

    writer = cast(RecordingStatusWriter, handlers.writer)
    assert (provider.calls, secrets.protected, writer.writes, posted.events) == ([], [], [], [])
    # Nothing is kept of a SyncJob that is gone.
    assert (handlers.reconciler.answered, handlers.reconciler.finished) == ({}, set())


async def test_a_lost_status_is_rebuilt_once_kopfs_status_write_would_have_landed(
    posted: Posted,
) -> None:
    provider = FakeProvider([OWNED_ACTIVE])
    handlers = _handlers(provider)
    handlers.on_watch_event(None, _body(body(external_id="id-1", annotations=HANDLED)))
    assert list(handlers.reconciler.due_members()) == []  # kopf's status write may be in flight
    for member in handlers.reconciler.due_members(now=time.time() + STATUS_IN_FLIGHT_SECONDS + 1):
        await handlers.drift_check(member)
    writes = cast(RecordingStatusWriter, handlers.writer).writes
    assert provider.calls == ["observe-list"]
    assert [(name, status["remote"]["id"]) for name, status in writes] == [("job", "id-1")]


async def test_a_listing_drops_what_is_kept_of_objects_it_did_not_return() -> None:
    handlers = _handlers(FakeProvider([]))
    bodies = {
        ("ns", "kept"): body(name="kept", uid="u-kept", external_id="id-1", annotations=HANDLED),
        ("ns", "gone"): body(name="gone", uid="u-gone", external_id="id-2", annotations=HANDLED),
        ("other", "elsewhere"): body(name="elsewhere", uid="u-other", namespace="other"),
    }
    for one in bodies.values():
        handlers.on_watch_event(None, _body(one))
    gone = SyncJob.from_body(bodies[("ns", "gone")])
    handlers.reconciler.deps.claims.claim(gone, "id-2")  # claimed in this process, not yet echoed
    OBJECT_STATES.set("u-gone", gone.spec.provider, "ACTIVE")

    handlers.reconciler.forget_unlisted("ns", {"u-kept"})  # the listing of namespace ns

    kept = sorted(m.job.name for m in handlers.reconciler.index.get(("member",)))
    assert kept == ["elsewhere", "kept"]  # another namespace's listing is not this one
    assert handlers.reconciler.deps.claims.claimants(gone.spec.provider, "id-2") == []
    assert "u-gone" not in OBJECT_STATES.states
    handlers.reconciler.forget_unlisted(None, set())  # a cluster-wide listing that found nothing
    assert list(handlers.reconciler.index.get(("member",))) == []


async def test_a_drift_pass_never_acts_on_a_spec_a_change_handler_has_replaced(
    posted: Posted,
) -> None:
    """The pass takes its members when it starts; a spec change handled meanwhile (the remote
    job already brought to the new spec) must not be "corrected" back to the old one. Seen in
    a chaos run: a Truto job PATCHed to its new resources, then back to the old ones."""
    provider = FakeProvider([])  # any remote call fails the test
    handlers = _handlers(provider)
    before = body(external_id="id-1", status=SYNCED, annotations=HANDLED)
    handlers.on_watch_event("MODIFIED", _body(before))
    [taken_by_the_pass] = list(handlers.reconciler.due_members())
    tagged = {"awsIoTTwinMaker": {**TWINMAKER_SPEC["awsIoTTwinMaker"], "tags": {"team": "b"}}}
    changed = body(
        external_id="id-1",
        spec=tagged,
        generation=4,
        status={**SYNCED, "observedGeneration": 4},
        annotations=HANDLED,
    )
    handlers.on_watch_event("MODIFIED", _body(changed))  # handled, then indexed

    await handlers.drift_check(taken_by_the_pass)

    writer = cast(RecordingStatusWriter, handlers.writer)
    assert (provider.calls, writer.writes, posted.events) == ([], [], [])


async def _drift_pass(handlers: KopfHandlers, one: dict[str, Any]) -> None:
    """What a drift pass does with `one` indexed: checks it if it is due."""
    handlers.on_watch_event("MODIFIED", _body(one))
    for member in handlers.reconciler.due_members():
        await handlers.drift_check(member)


async def _terminal_body(next_check: datetime.datetime, inputs: str | None = None) -> kopf.Body:
    """A SyncJob refused a job nobody owns (RemoteJobNotOwned) once, with its record."""
    job = SyncJob.from_body(body())
    refused = ProviderError(NOT_OWNED, "remote job arn:x already exists", retryable=False)
    if inputs is None:
        inputs = await inputs_hash(job, FakeSecrets())
    status = compute_status(
        job,
        Outcome(None, error=refused),
        {},
        NOW,
        terminal=TerminalRecord(inputs, 1, next_check),
    )
    return _body(body(status=status))


@pytest.mark.parametrize(
    ("one", "reads"),
    [
        pytest.param(
            body(external_id="id-1", status=SYNCED, annotations=HANDLED), [],
            id="settled-left-to-the-drift-pass",
        ),
        pytest.param(
            body(external_id="id-1", status=STILL_CREATING, annotations=HANDLED), ["observe-list"],
            id="still-creating-followed-at-once",
        ),
        pytest.param(
            body(external_id="id-1", status={**SYNCED, "observedGeneration": 2},
                 annotations=HANDLED), ["observe-list"],
            id="a-spec-change-handled-at-once",
        ),
    ],
)  # fmt: skip
async def test_a_restart_reads_only_syncjobs_not_settled(
    one: dict[str, Any], reads: list[str], posted: Posted
) -> None:
    provider = FakeProvider([OWNED_ACTIVE])
    patch = kopf.Patch()
    await _handlers(provider).on_change(_body(one), patch, 0, LOGGER, "resume")
    assert provider.journal == reads
    if not reads:
        assert dict(patch) == {}
        assert posted.events == []


async def test_reconciles_beyond_the_limit_wait_for_a_turn(posted: Posted) -> None:
    provider = FakeProvider([OWNED_ACTIVE])
    handlers = _handlers(provider)
    handlers.reconciler.deps.reconciles = asyncio.Semaphore(0)  # every turn taken
    one = body(external_id="id-1", status=SYNCED, annotations=HANDLED)
    waiting = asyncio.create_task(handlers.on_change(_body(one), kopf.Patch(), 0, LOGGER, "update"))
    await asyncio.sleep(0.05)
    assert (provider.journal, waiting.done()) == ([], False)  # no remote call before its turn
    handlers.reconciler.deps.reconciles.release()
    await waiting
    assert provider.journal == ["observe"]


async def test_a_terminal_error_not_due_makes_no_provider_call(posted: Posted) -> None:
    provider = FakeProvider([ACTIVE])
    secrets = FakeSecrets()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    patch = kopf.Patch()
    await _handlers(provider, secrets).on_change(
        await _terminal_body(later), patch, 0, LOGGER, "create"
    )
    assert provider.journal == []
    assert dict(patch) == {}
    assert posted.events == []
    assert secrets.protected == []  # not even Secret protection: nothing was reconciled


async def test_a_due_terminal_error_is_checked_once_and_backs_off_further(posted: Posted) -> None:
    provider = FakeProvider([ACTIVE])  # still exists, still not ours
    earlier = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError, match=NOT_OWNED):
        await _handlers(provider).on_change(
            await _terminal_body(earlier), patch, 0, LOGGER, "create"
        )
    assert provider.journal == ["observe"]
    assert patch["status"]["terminalChecks"] == 2
    assert [(kind, reason) for kind, reason, _ in posted.events] == [("Warning", "TerminalError")]


async def test_changed_inputs_are_checked_at_once_even_when_not_due(posted: Posted) -> None:
    provider = FakeProvider([ACTIVE])
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    patch = kopf.Patch()
    with pytest.raises(kopf.PermanentError):
        await _handlers(provider).on_change(
            await _terminal_body(later, inputs="before-the-fix"), patch, 0, LOGGER, "create"
        )
    assert provider.journal == ["observe"]
    assert patch["status"]["terminalChecks"] == 1  # new inputs: the count starts over


async def test_apply_creates_protects_secrets_and_posts_one_normal_event(
    posted: Posted,
) -> None:
    provider = FakeProvider([ABSENT])
    secrets = FakeSecrets()
    one = body(spec={"awsIoTTwinMaker": {**TWINMAKER_SPEC["awsIoTTwinMaker"],
                                         "credentialsSecretRef": {"name": "aws"}}})  # fmt: skip
    patch = kopf.Patch()
    with pytest.raises(kopf.TemporaryError):  # CREATING: poll until it settles
        await _handlers(provider, secrets).on_change(_body(one), patch, 0, LOGGER, "create")
    # The identity rides on the handler's own final write, not a write of its own.
    assert provider.journal == ["observe", "mark", "create"]
    assert patch["metadata"]["annotations"][EXTERNAL_ID_ANNOTATION] == "id-new"
    assert set(secrets.protected) == {"ns/aws"}  # before the guard and the identity (no-op)
    assert patch["status"]["remote"]["id"] == "id-new"
    assert posted.events == [("Normal", "CreatedRemoteJob", "remote job id-new created")]


async def test_delete_of_an_orphan_never_blocks_on_a_failed_release(posted: Posted) -> None:
    marked = dataclasses.replace(OWNED_ACTIVE, owner="ns/job")
    provider = FakeProvider([marked], marks_owner=True, fail={"release:id-1": DENIED})
    spec = orphan(JOB).spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    handlers = _handlers(provider)
    handlers.reconciler.deps.claims.claim(JOB, "id-1")
    patch = kopf.Patch()
    await handlers.delete(
        _body(body(spec=spec, external_id="id-1", deleting=True)), patch, 0, LOGGER
    )  # no exception: the finalizer goes
    assert provider.journal == ["observe", "release:id-1"]
    assert [(kind, reason) for kind, reason, _ in posted.events] == [("Warning", "ReleaseFailed")]
    assert handlers.reconciler.deps.claims.owner_of("AWSIoTTwinMaker", "id-1") is None  # forgotten


@pytest.mark.parametrize(
    ("timing", "delay"),
    [
        pytest.param(Timing(), 30, id="defaults-not-the-5-minute-terminal-recheck"),
        pytest.param(
            dataclasses.replace(TIMING, terminal_recheck_seconds=3), 3, id="compressed-timers"
        ),
    ],
)
async def test_a_blocked_deletion_says_so_names_orphan_and_retries_within_seconds(
    posted: Posted, timing: Timing, delay: float
) -> None:
    provider = FakeProvider([OWNED_ACTIVE], fail={"delete:id-1": DENIED})
    patch = kopf.Patch()
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    with pytest.raises(kopf.TemporaryError) as raised:  # never Permanent: it would strand it
        await _handlers(provider, timing=timing).delete(
            _body(body(external_id="id-1", status=SYNCED, deleting=True)), patch, 0, LOGGER
        )
    assert raised.value.delay == delay
    assert "deletionPolicy: Orphan" in str(raised.value)
    status = patch["status"]
    synced = condition(status, "Synced")
    assert synced is not None
    assert synced["status"] == "False"
    assert "deletion blocked" in synced["message"]
    assert "set spec.deletionPolicy: Orphan" in synced["message"]
    assert condition_reason(status, "Ready") == "Deleting"
    assert condition_reason(status, "Terminal") == "AccessDeniedException"
    next_check = datetime.datetime.fromisoformat(status["nextCheckTime"])
    assert datetime.timedelta(0) <= next_check - started <= datetime.timedelta(seconds=delay + 2)
    assert [(kind, reason, message) for kind, reason, message in posted.events] == [
        ("Warning", "DeletionBlocked", synced["message"])
    ]


async def test_a_blocked_deletion_that_cannot_read_the_job_is_not_ready(posted: Posted) -> None:
    revoked = ProviderError("Unauthorized", "Invalid or missing API token", retryable=False)
    provider = FakeProvider([], fail={"observe": revoked})
    handlers = _handlers(provider, timing=Timing())

    async def check(prior: dict[str, Any], retry: int) -> tuple[float | None, dict[str, Any]]:
        patch = kopf.Patch()
        with pytest.raises(kopf.TemporaryError) as raised:
            await handlers.delete(
                _body(body(external_id="id-1", status=prior, deleting=True)), patch, retry, LOGGER
            )
        return raised.value.delay, {**prior, **patch["status"]}

    delay, status = await check(SYNCED, 0)
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "Deleting")
    assert ready["message"] == "remote state ACTIVE (last read)"
    assert status["terminalChecks"] == 1
    assert [reason for _, reason, _ in posted.events] == ["DeletionBlocked"]

    # Checked again with nothing changed: one more check on the same short period, and no
    # second Event (the conditions say it; a check every 30 s would post 120 an hour).
    delay, status = await check(status, 1)
    assert delay == 30
    assert status["terminalChecks"] == 2
    assert [reason for _, reason, _ in posted.events] == ["DeletionBlocked"]

    # Another error blocks it now: that is news.
    provider.fail["observe"] = DENIED
    await check(status, 2)
    assert [reason for _, reason, _ in posted.events] == ["DeletionBlocked", "DeletionBlocked"]
    assert "AccessDeniedException" in posted.events[-1][2]


@pytest.mark.parametrize(
    ("one", "holds"),
    [
        pytest.param(body(), False, id="new-nothing-recorded"),
        pytest.param(body(external_id="id-1"), True, id="identity-annotation"),
        pytest.param(
            body(annotations={CREATE_PENDING_ANNOTATION: "2026-11-24T00:00:00Z abc"}), True,
            id="a-create-may-have-been-sent",
        ),
        pytest.param(body(status={"remote": {"id": "id-1"}}), True, id="identity-only-in-status"),
        pytest.param(
            body(status={"remote": {"state": "ABSENT"}}), False, id="status-without-a-job",
        ),
    ],
)  # fmt: skip
def test_only_a_syncjob_that_may_hold_a_remote_job_needs_the_delete_handler(
    one: dict[str, Any], holds: bool
) -> None:
    # Everything else is deleted without the operator: kopf adds no finalizer of its own.
    assert may_hold_remote_job(_body(one)) is holds


async def test_the_drift_pass_leaves_a_job_a_change_just_read_to_a_later_pass(
    posted: Posted,
) -> None:
    """Read by its change reconcile less than half a period ago, a SyncJob is not read again by
    the drift pass: at most one and a half periods pass between two reads of its remote job."""
    handlers = _handlers(FakeProvider([OWNED_ACTIVE]))
    synced = body(external_id="id-1", status=SYNCED, annotations=HANDLED)
    handlers.on_watch_event("MODIFIED", _body(synced))
    await handlers.on_change(_body(synced), kopf.Patch(), 0, LOGGER, "update")
    half = TIMING.drift_seconds / 2
    reconciler = handlers.reconciler

    assert list(reconciler.due_members()) == []
    assert list(reconciler.due_members(now=time.time() + half - 1)) == []
    [member] = reconciler.due_members(now=time.time() + half + 1)
    assert member.job.name == "job"
    assert len(list(reconciler.due_members())) == 1  # once due, due in every pass after
