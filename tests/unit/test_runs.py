"""Runs on demand (spec.truto.run): exactly one run per requestId, across crashes."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from syncjob_operator.converge import CREATE_IN_FLIGHT, Outcome, converge
from syncjob_operator.kube_events import kube_events
from syncjob_operator.model import RunMark, SyncJob, SyncJobSpec
from syncjob_operator.providers.base import Observation, ProviderError, Run
from syncjob_operator.status import compute_status
from tests.unit.fakes import FakeProvider, context
from tests.unit.jobs import TRUTO_JOB, TRUTO_SPEC

PRESENT = Observation(exists=True, remote_id="job-1", state="PRESENT", ready=True)
REQUEST = {"requestId": "backfill-1", "integratedAccountId": "acct-1", "args": {"since": "x"}}
NOW = datetime.datetime(2026, 12, 1, 12, tzinfo=datetime.UTC)


@dataclasses.dataclass
class RunsFake(FakeProvider):
    """A FakeProvider whose jobs run: starts are journaled, earlier runs answer runs_since."""

    earlier: list[Run] = dataclasses.field(default_factory=list)

    async def start_run(self, job: SyncJob) -> Run:
        self._enter("start-run")
        return Run("run-new", "created")

    async def runs_since(self, job: SyncJob, since: datetime.datetime) -> list[Run]:
        self._enter("runs-since")
        return list(self.earlier)


def _job(mark: RunMark | None = None) -> SyncJob:
    spec = {"truto": {**TRUTO_SPEC["truto"], "run": REQUEST}}
    job = dataclasses.replace(TRUTO_JOB, spec=SyncJobSpec.model_validate(spec), run_mark=mark)
    return job.with_remote_id("job-1")


def _ago(seconds: float) -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return now - datetime.timedelta(seconds=seconds)


async def test_a_new_request_starts_one_run_behind_a_pending_mark() -> None:
    provider = RunsFake([PRESENT])
    outcome = await converge(_job(), context(provider)[0])
    assert provider.journal == [
        "observe",
        "run-mark:backfill-1",
        "start-run",
        "run:backfill-1=run-new",
    ]
    assert outcome.run_started == Run("run-new", "created")
    assert outcome.observation is not None
    assert outcome.observation.last_run == Run("run-new", "created")


async def test_a_request_already_run_starts_nothing() -> None:
    provider = RunsFake([PRESENT])
    outcome = await converge(_job(RunMark("backfill-1", run_id="run-7")), context(provider)[0])
    assert provider.journal == ["observe"]
    assert outcome.run_started is None


async def test_a_changed_request_id_starts_a_new_run() -> None:
    provider = RunsFake([PRESENT])
    await converge(_job(RunMark("backfill-0", run_id="run-7")), context(provider)[0])
    assert "start-run" in provider.journal


async def test_after_a_crash_the_interrupted_start_is_claimed_not_repeated() -> None:
    provider = RunsFake([PRESENT], earlier=[Run("run-lost", "running")])
    mark = RunMark("backfill-1", since=_ago(5))
    outcome = await converge(_job(mark), context(provider)[0])
    assert provider.journal == ["observe", "runs-since", "run:backfill-1=run-lost"]
    assert outcome.run_started is None


async def test_after_a_crash_with_no_run_found_it_waits_out_the_in_flight_window() -> None:
    provider = RunsFake([PRESENT])
    outcome = await converge(_job(RunMark("backfill-1", since=_ago(5))), context(provider)[0])
    assert provider.journal == ["observe", "runs-since"]
    assert isinstance(outcome.error, ProviderError)
    assert outcome.error.code == CREATE_IN_FLIGHT
    provider = RunsFake([PRESENT])
    await converge(_job(RunMark("backfill-1", since=_ago(120))), context(provider)[0])
    assert provider.journal[-2:] == ["start-run", "run:backfill-1=run-new"]


@pytest.mark.parametrize(
    ("text", "mark"),
    [
        ("r1 run run-9", RunMark("r1", run_id="run-9")),
        ("r1 pending 2026-12-01T12:00:00Z", RunMark("r1", since=NOW)),
        ("r1 garbage x", None),
        ("", None),
    ],
)
def test_run_marks_round_trip(text: str, mark: RunMark | None) -> None:
    assert RunMark.decode(text) == mark
    if mark is not None:
        assert mark.encode() == text


def _status(job: SyncJob, run: Run, prior: dict[str, Any], started: bool = False) -> dict[str, Any]:
    observed = dataclasses.replace(PRESENT, last_run=run)
    return compute_status(job, Outcome(observed, run_started=run if started else None), prior, NOW)


def test_last_run_names_its_request_and_a_failure_posts_one_warning() -> None:
    job = _job(RunMark("backfill-1", run_id="run-new"))
    running = _status(job, Run("run-new", "running", started_at=NOW), {})
    assert running["lastRun"] == {
        "id": "run-new",
        "status": "running",
        "requestId": "backfill-1",
        "startedAt": "2026-12-01T12:00:00Z",
    }
    failed_run = Run("run-new", "failed", started_at=NOW, finished_at=NOW, error="token revoked")
    failed = _status(job, failed_run, running)
    outcome = Outcome(dataclasses.replace(PRESENT, last_run=failed_run))
    found = kube_events(outcome, running, failed, trigger="drift")
    assert [(e.reason, e.warning) for e in found] == [("RunFailed", True)]
    assert "token revoked" in found[0].message
    assert kube_events(outcome, failed, failed, trigger="drift") == []
    scheduled = _status(job, Run("run-cron", "completed"), failed)
    assert "requestId" not in scheduled["lastRun"]  # started by the cron trigger
