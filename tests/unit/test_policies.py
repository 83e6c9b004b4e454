"""Management policies: ObserveOnly mirrors and never writes or claims; the pause annotation
stops every remote call, deletion included."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, cast

import kopf
import pytest

from syncjob_operator.drift import Member
from syncjob_operator.handlers import HandlerDeps, Handlers, Timing, index_body, may_hold_remote_job
from syncjob_operator.model import PAUSED_ANNOTATION, SyncJob
from syncjob_operator.ownership import job_entries
from syncjob_operator.providers.base import ABSENT, Observation
from syncjob_operator.reconcile import EXTERNAL_ID_REQUIRED, converge, remove
from syncjob_operator.status import OBSERVING, PAUSED, SYNCED, compute_status, condition
from tests.unit.fakes import (
    FakeProvider,
    FakeSecrets,
    RecordingStatusWriter,
    RecordingWriter,
    context,
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


def _handlers(provider: FakeProvider) -> Handlers:
    return Handlers(
        HandlerDeps(
            providers={"AWSIoTTwinMaker": provider},
            writer=RecordingWriter(provider.journal),
            secrets=FakeSecrets(),
            status_writer=RecordingStatusWriter(),
            timing=Timing(),
        )
    )


PAUSED_BODY = body(external_id="id-1", annotations={PAUSED_ANNOTATION: "true"})


async def test_a_paused_syncjob_makes_no_call_and_says_so() -> None:
    provider = FakeProvider([])
    patch = kopf.Patch()
    await _handlers(provider).on_change(
        kopf.Body(cast(kopf.RawBody, PAUSED_BODY)), patch, 0, LOGGER, "update"
    )
    assert provider.journal == []
    synced = condition(patch["status"], SYNCED)
    assert synced is not None
    assert (synced["status"], synced["reason"]) == ("False", PAUSED)


async def test_the_drift_pass_skips_a_paused_syncjob() -> None:
    provider = FakeProvider([])
    handlers = _handlers(provider)
    entries: dict[Any, Any] = await index_body(kopf.Body(cast(kopf.RawBody, PAUSED_BODY)))
    member: Member = entries[("member",)]
    await handlers.resync(member)
    assert provider.journal == []
    assert cast(RecordingStatusWriter, handlers.runtime.status_writer).writes == []


async def test_deleting_a_paused_syncjob_waits_with_its_finalizer() -> None:
    provider = FakeProvider([])
    patch = kopf.Patch()
    deleting = body(external_id="id-1", annotations={PAUSED_ANNOTATION: "true"}, deleting=True)
    with pytest.raises(kopf.TemporaryError) as raised:  # the finalizer stays
        await _handlers(provider).delete(kopf.Body(cast(kopf.RawBody, deleting)), patch, 0, LOGGER)
    assert provider.journal == []
    assert "reconcile.syncjob.dev/paused" in str(raised.value)


def _now() -> datetime.datetime:
    return datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
