"""The drift pass: one walk per scope, members of a scope one after another, failures contained."""

from __future__ import annotations

import asyncio
import datetime
import gc
import math
from collections.abc import Hashable

import pytest

from syncjob_operator.drift import DriftPass, Member
from syncjob_operator.model import PAUSED_ANNOTATION, RUN_ANNOTATION, PendingCreate, SyncJob
from syncjob_operator.providers.base import ProviderError
from tests.unit.jobs import TWINMAKER_SPEC, body


def _member(name: str, workspace: str) -> Member:
    spec = {"awsIoTTwinMaker": {**TWINMAKER_SPEC["awsIoTTwinMaker"], "workspaceId": workspace}}
    return Member.of(body(name=name, uid=name, spec=spec))


async def _scope(job: SyncJob) -> Hashable:
    assert job.spec.twinmaker is not None
    if job.spec.twinmaker.workspace_id == "broken":
        raise RuntimeError("its Secret is missing")
    return job.spec.twinmaker.workspace_id


async def test_one_walk_per_scope_its_members_in_turn_and_failures_contained() -> None:
    members = [
        _member("a1", "plant-a"),
        _member("b1", "plant-b"),
        _member("a2", "plant-a"),
        _member("x", "broken"),
        _member("a3", "plant-a"),
    ]
    order: list[str] = []
    running: dict[Hashable, int] = {}

    async def check(member: Member) -> None:
        scope = await _scope(member.job) if member.job.name != "x" else "x"
        running[scope] = running.get(scope, 0) + 1
        assert running[scope] == 1, "two members of one scope checked at once"
        await asyncio.sleep(0)
        order.append(member.job.name)
        running[scope] -= 1
        if member.job.name == "a2":
            raise RuntimeError("one object's failure")

    drift = DriftPass(period=60, members=lambda: members, scope_of=_scope, check=check)
    scopes = await drift.sweep()
    assert scopes == 3  # plant-a, plant-b, and the one whose scope could not be told
    assert sorted(order) == ["a1", "a2", "a3", "b1", "x"]  # a2 failing stopped nobody
    assert [name for name in order if name.startswith("a")] == ["a1", "a2", "a3"]


class _SteppedClock:
    """Stands in for asyncio.sleep: each sleep waits until the test lets one period pass."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._asleep = asyncio.Condition()
        self._ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        async with self._asleep:
            self.slept.append(seconds)
            self._asleep.notify_all()
        await self._ticks.get()

    async def asleep(self, times: int) -> None:
        """Returns once the loop has gone to sleep `times` times in all."""
        async with self._asleep:
            await self._asleep.wait_for(lambda: len(self.slept) >= times)

    async def tick(self) -> None:
        """One period passes: the sleeping loop wakes, and this returns once it sleeps again."""
        sleeps = len(self.slept)
        self._ticks.put_nowait(None)
        await self.asleep(sleeps + 1)


async def test_a_pass_runs_once_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[str] = []
    collections: list[int] = []  # a full collection after each pass (counted, not run here)
    monkeypatch.setattr(gc, "collect", lambda: collections.append(1) or 0)

    async def check(member: Member) -> None:
        walked.append(member.job.name)

    members = [_member("a1", "plant-a")]
    clock = _SteppedClock()
    drift = DriftPass(
        period=60, members=lambda: members, scope_of=_scope, check=check, sleep=clock.sleep
    )
    task = asyncio.create_task(drift.run())
    await clock.asleep(1)
    assert walked == []  # the first pass waits one period
    for passes in (1, 2, 3):
        await clock.tick()
        assert walked == ["a1"] * passes
        assert len(collections) == passes
    assert clock.slept == [60, 60, 60, 60]  # one period before each pass, and before the next
    task.cancel()


async def test_a_failed_pass_does_not_end_the_loop() -> None:
    tried: list[str] = []

    async def unreachable(member: Member) -> None:
        tried.append(member.job.name)
        raise ProviderError("KubernetesUnreachable", "no answer", retryable=True)

    clock = _SteppedClock()
    drift = DriftPass(
        period=60,
        members=lambda: [_member("a1", "plant-a")],
        scope_of=_scope,
        check=unreachable,
        sleep=clock.sleep,
        ends_pass=lambda error: True,
    )
    task = asyncio.create_task(drift.run())
    await clock.asleep(1)
    await clock.tick()
    await clock.tick()
    assert tried == ["a1", "a1"]
    task.cancel()


async def test_an_error_no_object_escapes_ends_the_pass_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    members = [_member(f"a{i}", f"plant-{i}") for i in range(5)]
    tried: list[str] = []

    async def check(member: Member) -> None:
        tried.append(member.job.name)
        raise ProviderError(
            "KubernetesUnreachable", "the API server did not answer", retryable=True
        )

    drift = DriftPass(
        period=60,
        members=lambda: members,
        scope_of=_scope,
        check=check,
        concurrency=1,
        ends_pass=lambda error: error.code == "KubernetesUnreachable",
    )
    with pytest.raises(ProviderError):
        await drift.sweep()
    assert tried == ["a0"]  # the others were not tried
    assert caplog.records == []  # the pass's caller logs it, once


async def test_a_classified_error_of_one_object_is_one_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check(member: Member) -> None:
        raise ProviderError("SecretNotFound", "Secret ns/s does not exist", retryable=False)

    members = [_member("a1", "plant-a"), _member("b1", "plant-b")]
    drift = DriftPass(period=60, members=lambda: members, scope_of=_scope, check=check)
    assert await drift.sweep() == 2
    assert sorted(r.getMessage() for r in caplog.records) == [
        f"drift check of ns/{name} failed: SecretNotFound: Secret ns/s does not exist"
        for name in ("a1", "b1")
    ]
    assert [r.exc_info for r in caplog.records] == [None, None]


def test_a_member_keeps_its_status_whole_and_parses_as_its_body_does() -> None:
    status = {"observedGeneration": 2, "remote": {"id": "arn:x", "upToDate": True}}
    assert _member("a1", "plant-a").parse()[1] == {}
    full = body(
        external_id="arn:x",
        pending=PendingCreate(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), "h"),
        adopt=True,
        annotations={PAUSED_ANNOTATION: "true", RUN_ANNOTATION: "r1 run run-1"},
        status=status,
        deleting=True,
    )
    full["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    member = Member.of(full, handler_until=math.inf)
    assert member.parse() == (SyncJob.from_body(full), status)
    assert "managedFields" not in member.body_json
