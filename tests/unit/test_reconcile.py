"""reconcile.apply / remove against a fake provider: every branch says why it exists."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from syncjob_operator.model import PendingCreate, SyncJob
from syncjob_operator.providers.base import ABSENT, Observation, ProviderError
from syncjob_operator.reconcile import apply, remove
from tests.unit.jobs import TWINMAKER_JOB

ACTIVE = Observation(exists=True, remote_id="id-1", state="ACTIVE", ready=True)
JOB = TWINMAKER_JOB


@dataclass
class FakeProvider:
    observations: list[Observation]
    fail: dict[str, ProviderError] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    name: str = "AWSIoTTwinMaker"

    def _enter(self, call: str) -> None:
        self.calls.append(call)
        if call in self.fail:
            raise self.fail[call]

    async def observe(self, job: SyncJob, *, shared_list: bool = False) -> Observation:
        self._enter("observe-list" if shared_list else "observe")
        return self.observations.pop(0)

    async def create(self, job: SyncJob) -> Observation:
        self._enter("create")
        assert job.pending_create is not None, "create must see the persisted guard"
        return dataclasses.replace(ACTIVE, state="CREATING", settled=False, ready=False)

    async def update(self, job: SyncJob, observed: Observation) -> Observation:
        self._enter("update")
        return dataclasses.replace(observed, up_to_date=True)

    async def delete(self, job: SyncJob, observed: Observation) -> None:
        self._enter("delete")


@dataclass
class RecordingWriter:
    events: list[str] = field(default_factory=list)

    async def mark_pending_create(self, job: SyncJob, pending: PendingCreate) -> None:
        self.events.append("pending")

    async def record_identity(self, job: SyncJob, observed: Observation) -> None:
        self.events.append(f"identity:{observed.remote_id}")


async def test_absent_job_is_created_with_the_guard_written_first() -> None:
    provider, writer = FakeProvider([ABSENT]), RecordingWriter()
    outcome = await apply(JOB, provider, writer)
    assert outcome.action == "created"
    assert not outcome.done  # CREATING: the handler keeps polling
    assert provider.calls == ["observe", "create"]
    assert writer.events == ["pending", "identity:id-1"]


async def test_a_stale_list_absence_is_confirmed_before_creating() -> None:
    provider = FakeProvider([ABSENT, ACTIVE])
    outcome = await apply(
        dataclasses.replace(JOB, remote_id="id-1"), provider, RecordingWriter(), shared_list=True
    )
    assert provider.calls == ["observe-list", "observe"]
    assert outcome.action == "none"


async def test_found_without_recorded_identity_is_adopted() -> None:
    writer = RecordingWriter()
    outcome = await apply(JOB, FakeProvider([ACTIVE]), writer)
    assert outcome.action == "adopted"
    assert writer.events == ["identity:id-1"]


async def test_drifted_job_is_updated_but_not_while_it_moves_or_failed() -> None:
    job = dataclasses.replace(JOB, remote_id="id-1")
    drifted = dataclasses.replace(ACTIVE, up_to_date=False)
    provider = FakeProvider(
        [
            drifted,
            dataclasses.replace(drifted, settled=False),
            dataclasses.replace(drifted, failed=True),
        ]
    )
    assert (await apply(job, provider, RecordingWriter())).action == "updated"
    assert (await apply(job, provider, RecordingWriter())).action == "none"
    assert (await apply(job, provider, RecordingWriter())).action == "none"
    assert provider.calls.count("update") == 1


async def test_vanished_job_is_recreated_under_delete_and_left_alone_under_orphan() -> None:
    known = dataclasses.replace(JOB, remote_id="id-1")
    assert (await apply(known, FakeProvider([ABSENT]), RecordingWriter())).action == "recreated"
    orphan = dataclasses.replace(
        known, spec=known.spec.model_copy(update={"deletion_policy": "Orphan"})
    )
    provider = FakeProvider([ABSENT])
    outcome = await apply(orphan, provider, RecordingWriter())
    assert (outcome.action, provider.calls) == ("none", ["observe"])


@pytest.mark.parametrize("failing", ["observe", "create"])
async def test_provider_errors_come_back_as_values(failing: str) -> None:
    error = ProviderError("ThrottlingException", "slow", retryable=True)
    outcome = await apply(JOB, FakeProvider([ABSENT], fail={failing: error}), RecordingWriter())
    assert outcome.error is error
    assert not outcome.done


async def test_remove_deletes_then_waits_until_gone() -> None:
    deleting = dataclasses.replace(ACTIVE, state="DELETING")
    provider = FakeProvider([ACTIVE, deleting])
    outcome = await remove(JOB, provider)
    assert (outcome.action, outcome.done) == ("deleting", False)
    assert provider.calls == ["observe", "delete", "observe"]
    provider = FakeProvider([deleting, ABSENT])
    assert (await remove(JOB, provider)).action == "deleting"  # no second DeleteSyncJob
    assert provider.calls == ["observe"]
    assert (await remove(JOB, provider)).action == "deleted"


async def test_remove_with_orphan_policy_makes_no_remote_call() -> None:
    provider = FakeProvider([])
    orphan = dataclasses.replace(
        JOB, spec=JOB.spec.model_copy(update={"deletion_policy": "Orphan"})
    )
    outcome = await remove(orphan, provider)
    assert (outcome.action, outcome.done, provider.calls) == ("orphaned", True, [])
