"""Truto: the content hash the crash guard matches leftovers by, drift, and find_created."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from syncjob_operator.model import PendingCreate, SyncJob, SyncJobSpec, TrutoSpec
from syncjob_operator.providers import truto
from tests.unit.fakes import FakeSecrets
from tests.unit.jobs import TRUTO_JOB, TRUTO_SPEC


def _spec(extra: dict[str, Any] | None = None) -> TrutoSpec:
    parsed = SyncJobSpec.model_validate({"truto": {**TRUTO_SPEC["truto"], **(extra or {})}})
    assert parsed.truto is not None
    return parsed.truto


SPEC = _spec()
SCHEDULED = _spec({"schedule": {"cronExpression": "0 * * * *", "integratedAccountId": "acct"}})
TRIGGER = {
    "id": "tr-1",
    "created_at": "2026-01-01T00:00:00Z",
    "cron_expression": "0 * * * *",
    "integrated_account_id": "acct",
    "args": {},
}

# A job as Truto lists it: ids, timestamps, other fields, and unset resource fields as null.
LISTED: dict[str, Any] = {
    "id": "t-1",
    "environment_id": "env-1",
    "created_at": "2026-01-01T00:00:10Z",
    "updated_at": "2026-01-01T00:00:10Z",
    "resources": [
        {
            "resource": "crm/contacts",
            "method": "list",
            "loop_on": "ids",
            "id": None,
            "query": None,
            "depends_on": None,
            "persist": None,
        }
    ],
    "args_schema": {"type": "object"},
    "integration_name": "hubspot",
}


def _resources(**changes: Any) -> list[dict[str, Any]]:
    return [{**LISTED["resources"][0], **changes}]


async def test_the_spec_and_its_listed_remote_hash_alike() -> None:
    desired = truto.desired_body(SPEC)
    assert truto.content_hash(desired) == truto.content_hash(LISTED)
    assert truto.content_hash(dict(reversed(list(LISTED.items())))) == truto.content_hash(LISTED)
    # The provider's fingerprint is what the marker records: the same hash.
    provider = truto.TrutoProvider(FakeSecrets())
    try:
        assert provider.fingerprint(TRUTO_JOB) == truto.content_hash(LISTED)
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"resources": _resources(method="get")}, id="a-resource-field"),
        pytest.param({"resources": _resources(persist=True)}, id="a-field-set-that-was-null"),
        pytest.param(
            {"resources": [*_resources(), *_resources(resource="crm/deals")]},
            id="one-more-resource",
        ),
        pytest.param({"args_schema": {"type": "array"}}, id="args-schema"),
        pytest.param({"integration_name": "salesforce"}, id="integration"),
    ],
)
def test_different_content_hashes_differently(changes: dict[str, Any]) -> None:
    assert truto.content_hash({**LISTED, **changes}) != truto.content_hash(LISTED)


def test_resource_order_is_content() -> None:
    two = [*_resources(), *_resources(resource="crm/deals")]
    assert truto.content_hash({**LISTED, "resources": two}) != truto.content_hash(
        {**LISTED, "resources": two[::-1]}
    )  # resources may depend on each other: order is what Truto runs


@pytest.mark.parametrize(
    ("spec", "remote", "triggers", "drift"),
    [
        pytest.param(SPEC, LISTED, None, (), id="in-sync-and-schedule-not-read"),
        pytest.param(
            SPEC, {**LISTED, "resources": _resources(method="get")}, None, ("resources",),
            id="changed-resources",
        ),
        pytest.param(
            SPEC,
            {**LISTED, "resources": _resources(method="get"), "args_schema": {}},
            None,
            ("args_schema", "resources"),
            id="several-fields-sorted",
        ),
        pytest.param(SCHEDULED, LISTED, [], ("schedule",), id="schedule-missing"),
        pytest.param(
            SCHEDULED, LISTED, [{**TRIGGER, "cron_expression": "5 * * * *"}], ("schedule",),
            id="schedule-changed",
        ),
        pytest.param(SCHEDULED, LISTED, [TRIGGER], (), id="schedule-in-sync"),
        pytest.param(SPEC, LISTED, [TRIGGER], ("schedule",), id="schedule-no-longer-wanted"),
        pytest.param(
            SCHEDULED, {**LISTED, "resources": []}, [], ("resources", "schedule"),
            id="fields-then-schedule",
        ),
    ],
)  # fmt: skip
def test_drift_names_what_differs(
    spec: TrutoSpec,
    remote: dict[str, Any],
    triggers: list[dict[str, Any]] | None,
    drift: tuple[str, ...],
) -> None:
    observed = truto._observation(remote, spec, triggers)
    assert observed.drift == drift
    assert observed.up_to_date is (not drift)
    assert observed.remote_id == "t-1"
    assert observed.created_at == datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=datetime.UTC)
    assert observed.schedule_id == (triggers[0]["id"] if triggers else None)


MARKER = PendingCreate(
    started_at=datetime.datetime(2026, 1, 1, 0, 0, 0, tzinfo=datetime.UTC),
    content_hash=truto.content_hash(LISTED),
)


def _listed(remote_id: str, created_at: str, **changes: Any) -> dict[str, Any]:
    return {**LISTED, "id": remote_id, "created_at": created_at, **changes}


def _lister(jobs: list[dict[str, Any]]) -> Callable[[SyncJob], Awaitable[dict[str, Any]]]:
    async def _list(job: SyncJob) -> dict[str, Any]:
        return {remote["id"]: remote for remote in jobs}

    return _list


@pytest.mark.parametrize(
    ("listed", "found"),
    [
        pytest.param(
            [
                _listed("late", "2026-01-01T00:00:20Z"),
                _listed("early", "2026-01-01T00:00:05Z"),
                _listed("skewed", "2025-12-31T23:59:50Z"),
            ],
            ["skewed", "early", "late"],
            id="same-content-since-the-marker-oldest-first-with-clock-skew",
        ),
        pytest.param(
            [_listed("before", "2025-12-31T23:50:00Z")],
            [],
            id="made-long-before-the-marker-is-not-ours",
        ),
        pytest.param(
            [_listed("other", "2026-01-01T00:00:05Z", args_schema={"type": "array"})],
            [],
            id="other-content-is-not-ours",
        ),
        pytest.param(
            [_listed("b", "2026-01-01T00:00:05Z"), _listed("a", "2026-01-01T00:00:05Z")],
            ["a", "b"],
            id="same-second-ordered-by-id-so-replicas-agree",
        ),
    ],
)
async def test_find_created_lists_candidates_of_the_markers_content(
    listed: list[dict[str, Any]], found: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = truto.TrutoProvider(FakeSecrets())
    monkeypatch.setattr(provider, "_list", _lister(listed))
    try:
        job = dataclasses.replace(TRUTO_JOB, pending_create=MARKER)
        candidates = await provider.find_created(job)
        assert [c.remote_id for c in candidates] == found
        assert all(c.exists and c.up_to_date for c in candidates)
        assert await provider.find_created(TRUTO_JOB) == []  # no marker: nothing to look for
    finally:
        await provider.aclose()
