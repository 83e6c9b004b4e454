"""Management policies: ObserveOnly mirrors and never writes or claims; the pause annotation
stops every remote call, deletion included."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, cast

import kopf
import pytest

from syncjob_operator.converge import EXTERNAL_ID_REQUIRED, Outcome, converge, remove
from syncjob_operator.kopf_edge.handlers import index_entries
from syncjob_operator.kopf_edge.settings import LAST_HANDLED
from syncjob_operator.kube_events import kube_events
from syncjob_operator.model import PAUSED_ANNOTATION, SyncJob, may_hold_remote_job
from syncjob_operator.ownership import job_entries
from syncjob_operator.providers.base import ABSENT, Observation, ResourceError, SyncProgress
from syncjob_operator.reconcile import Timing
from syncjob_operator.status import OBSERVING, PAUSED, SYNCED, compute_status, condition
from tests.unit.fakes import (
    FakeProvider,
    RecordingStatusWriter,
    context,
    handlers_for,
)
from tests.unit.jobs import TRUTO_JOB, TWINMAKER_JOB, TWINMAKER_SPEC, body

LOGGER = kopf.LocalObjectLogger(body=kopf.Body({}), settings=kopf.OperatorSettings())
ACTIVE = Observation(exists=True, remote_id="id-1", state="ACTIVE", ready=True, up_to_date=True)
DRIFTED = dataclasses.replace(ACTIVE, up_to_date=False, drift=("tag team",))
OBSERVE_ONLY_SPEC = {**TWINMAKER_SPEC, "managementPolicy": "ObserveOnly"}


def observe_only(job: SyncJob) -> SyncJob:
    return dataclasses.replace(
        job, spec=job.spec.model_copy(update={"management_policy": "ObserveOnly"})
    )


@pytest.mark.parametrize("observed", [ACTIVE, DRIFTED, ABSENT], ids=["active", "drifted", "absent"])
async def test_observe_only_reads_and_does_nothing_else(observed: Observation) -> None:
    provider = FakeProvider([observed], found_by_spec=True)
    outcome = await converge(observe_only(TWINMAKER_JOB), context(provider)[0])
    assert provider.journal == ["observe"]  # no create, update, tag, mark or identity write
    assert outcome.action == "observed"
    assert outcome.error is None
    assert outcome.observation == observed


async def test_observe_only_says_where_it_differs_from_the_spec() -> None:
    job = observe_only(TWINMAKER_JOB)
    outcome = await converge(job, context(FakeProvider([DRIFTED], found_by_spec=True))[0])
    synced = condition(compute_status(job, outcome, {}, _now()), SYNCED)
    assert synced is not None
    assert (synced["status"], synced["reason"]) == ("True", OBSERVING)
    assert "differs from the spec in tag team" in synced["message"]


async def test_observe_only_of_a_job_found_by_id_needs_the_id() -> None:
    provider = FakeProvider([], found_by_spec=False)
    outcome = await converge(observe_only(TRUTO_JOB), context(provider)[0])
    assert provider.journal == []
    assert outcome.error is not None
    assert outcome.error.code == EXTERNAL_ID_REQUIRED
    assert not outcome.error.retryable


async def test_observe_only_never_deletes_and_observing_claims_nothing() -> None:
    job = observe_only(TWINMAKER_JOB).with_remote_id("id-1")
    provider = FakeProvider([ACTIVE])
    outcome = await remove(job, context(provider)[0])
    assert provider.journal == []
    assert outcome.action == "released"
    assert not [key for key in job_entries(job) if key[0] == "claim"]
    assert may_hold_remote_job(kopf.Body(body(spec=OBSERVE_ONLY_SPEC, external_id="id-1"))) is False


TIMING = Timing()


PAUSED_BODY = body(external_id="id-1", annotations={PAUSED_ANNOTATION: "true"})


async def test_a_paused_syncjob_makes_no_call_and_says_so() -> None:
    provider = FakeProvider([])
    patch = kopf.Patch()
    await handlers_for(provider).on_change(
        kopf.Body(cast(kopf.RawBody, PAUSED_BODY)), patch, 0, LOGGER, "update"
    )
    assert provider.journal == []
    synced = condition(patch["status"], SYNCED)
    assert synced is not None
    assert (synced["status"], synced["reason"]) == ("False", PAUSED)


async def test_the_drift_pass_treats_a_paused_syncjob_as_a_change_does() -> None:
    """No remote call; the paused status is written once, where it is not shown already."""
    provider = FakeProvider([])
    handlers = handlers_for(provider)
    writer = cast(RecordingStatusWriter, handlers.writer)
    entries: dict[Any, Any] = index_entries(kopf.Body(cast(kopf.RawBody, PAUSED_BODY)))
    await handlers.drift_check(entries[("member",)])
    [(name, status)] = writer.writes
    synced = condition(status, SYNCED)
    assert synced is not None
    assert (name, synced["reason"]) == ("job", PAUSED)
    shown = body(external_id="id-1", annotations={PAUSED_ANNOTATION: "true"}, status=status)
    entries = index_entries(kopf.Body(cast(kopf.RawBody, shown)))
    await handlers.drift_check(entries[("member",)])
    assert (provider.journal, len(writer.writes)) == ([], 1)


async def test_deleting_a_paused_syncjob_waits_with_its_finalizer() -> None:
    provider = FakeProvider([])
    patch = kopf.Patch()
    deleting = body(external_id="id-1", annotations={PAUSED_ANNOTATION: "true"}, deleting=True)
    with pytest.raises(kopf.TemporaryError) as raised:  # the finalizer stays
        await handlers_for(provider).delete(
            kopf.Body(cast(kopf.RawBody, deleting)), patch, 0, LOGGER
        )
    assert provider.journal == []
    assert "reconcile.syncjob.dev/paused" in str(raised.value)


def _now() -> datetime.datetime:
    return datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


# Resource progress (TwinMaker's ListSyncResources), read by the drift pass only.
PROGRESS = SyncProgress(counts=(("ERROR", 2), ("IN_SYNC", 5)), complete=True, errors=(
    ResourceError("ENTITY", "pump-7", "SYNC_PROCESSING_ERROR", "asset gone"),
))  # fmt: skip


def test_progress_is_shown_kept_while_ready_and_dropped_when_not() -> None:
    job = TWINMAKER_JOB.with_remote_id("id-1")
    read = compute_status(job, Outcome(dataclasses.replace(ACTIVE, progress=PROGRESS)), {}, _now())
    shown = read["syncProgress"]
    assert (shown["IN_SYNC"], shown["ERROR"], shown["PROCESSING"], shown["complete"]) == (
        5,
        2,
        0,
        True,
    )
    assert shown["errors"][0]["externalId"] == "pump-7"
    # A look that did not read progress (a spec change) keeps it while the job is ready.
    assert compute_status(job, Outcome(ACTIVE), read, _now())["syncProgress"] == shown
    failing = dataclasses.replace(ACTIVE, state="ERROR", ready=False, failed=True)
    assert "syncProgress" not in compute_status(job, Outcome(failing), read, _now())


def test_resource_errors_appearing_post_one_warning() -> None:
    job = TWINMAKER_JOB.with_remote_id("id-1")
    clean = dataclasses.replace(PROGRESS, counts=(("IN_SYNC", 7),), errors=())
    before = compute_status(job, Outcome(dataclasses.replace(ACTIVE, progress=clean)), {}, _now())
    outcome = Outcome(dataclasses.replace(ACTIVE, progress=PROGRESS))
    after = compute_status(job, outcome, before, _now())
    found = kube_events(outcome, before, after, trigger="drift")
    assert [(e.reason, e.warning) for e in found] == [("SyncResourceErrors", True)]
    assert "2 resource(s)" in found[0].message
    assert kube_events(outcome, after, after, trigger="drift") == []  # once


async def test_only_the_drift_pass_reads_progress() -> None:
    synced = compute_status(TWINMAKER_JOB.with_remote_id("id-1"), Outcome(ACTIVE), {}, _now())
    one = body(external_id="id-1", status=synced, annotations={LAST_HANDLED: "{}"})
    provider = FakeProvider([ACTIVE, ACTIVE])
    handlers = handlers_for(provider, timing=Timing(progress_seconds=0))  # due on every pass
    handlers.on_watch_event("MODIFIED", one)
    entries: dict[Any, Any] = index_entries(kopf.Body(cast(kopf.RawBody, one)))
    await handlers.drift_check(entries[("member",)])
    await handlers.on_change(kopf.Body(cast(kopf.RawBody, one)), kopf.Patch(), 0, LOGGER, "update")
    assert provider.progress_asked == [True, False]
