"""TwinMaker: the owner tag, and what one read lets the reconciler conclude."""

from __future__ import annotations

import dataclasses
import datetime
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from syncjob_operator.model import SyncJobSpec
from syncjob_operator.providers import twinmaker
from syncjob_operator.providers.twinmaker import OWNER_TAG, TwinMakerBasis
from tests.unit.fakes import FakeSecrets
from tests.unit.jobs import TWINMAKER_JOB, TWINMAKER_SPEC

ROLE = "arn:aws:iam::123456789012:role/r"
JOB = dataclasses.replace(
    TWINMAKER_JOB,
    spec=SyncJobSpec.model_validate(
        {"awsIoTTwinMaker": {**TWINMAKER_SPEC["awsIoTTwinMaker"], "tags": {"team": "a"}}}
    ),
)
CREATED_AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
SUMMARY: dict[str, Any] = {
    "arn": "arn:sync:1",
    "status": {"state": "ACTIVE"},
    "creationDateTime": CREATED_AT,
}
OURS = {"team": "a", OWNER_TAG: "ns/job"}


def test_desired_tags_add_the_owner_tag_to_the_users_tags() -> None:
    assert twinmaker.desired_tags(JOB) == OURS
    assert twinmaker.desired_tags(TWINMAKER_JOB) == {OWNER_TAG: "ns/job"}


@pytest.mark.parametrize(
    ("tags", "role", "up_to_date", "owner", "drift", "conflict"),
    [
        pytest.param(
            None, None, None, None, (), None,
            id="tags-not-read-nothing-may-be-concluded",
        ),
        pytest.param(OURS, ROLE, True, "ns/job", (), None, id="ours-and-in-sync"),
        pytest.param(
            {**OURS, OWNER_TAG: "other/job"}, ROLE, False, "other/job", (f"tag {OWNER_TAG}",),
            None, id="a-foreign-owner-tag-names-that-owner",
        ),
        pytest.param(
            {"team": "a"}, ROLE, False, None, (f"tag {OWNER_TAG}",), None,
            id="no-owner-tag-a-job-made-by-hand",
        ),
        pytest.param(
            {**OURS, "extra": "x", "team": "b"}, ROLE, False, "ns/job",
            ("tag extra", "tag team"), None, id="user-tag-drift-named-by-key-only",
        ),
        pytest.param(
            OURS, "arn:aws:iam::123456789012:role/other", True, "ns/job", (),
            "syncRole arn:aws:iam::123456789012:role/other",
            id="a-different-role-is-a-conflict-no-update-can-fix",
        ),
        pytest.param(
            None, "arn:aws:iam::123456789012:role/other", None, None, (),
            "syncRole arn:aws:iam::123456789012:role/other",
            id="role-conflict-judged-even-without-tags",
        ),
    ],
)  # fmt: skip
def test_observation_from_one_read(
    tags: dict[str, str] | None,
    role: str | None,
    up_to_date: bool | None,
    owner: str | None,
    drift: tuple[str, ...],
    conflict: str | None,
) -> None:
    observed = twinmaker._observation(SUMMARY, JOB, tags=tags, role=role)
    assert (observed.up_to_date, observed.owner, observed.drift, observed.conflict) == (
        up_to_date,
        owner,
        drift,
        conflict,
    )
    assert (observed.remote_id, observed.created_at) == ("arn:sync:1", CREATED_AT)
    # What was read is kept, typed, for update(); nothing is kept for what was not read.
    assert observed.basis == (None if tags is None else TwinMakerBasis(tags))


@pytest.mark.parametrize(
    ("status", "ready", "settled", "failed"),
    [
        pytest.param({"state": "ACTIVE"}, True, True, False, id="active"),
        pytest.param({"state": "CREATING"}, False, False, False, id="creating-moves-on-its-own"),
        pytest.param({"state": "INITIALIZING"}, False, False, False, id="initializing"),
        pytest.param({"state": "DELETING"}, False, False, False, id="deleting"),
        pytest.param(
            {"state": "ERROR", "error": {"code": "SYNC_CREATING_ERROR", "message": "boom"}},
            False,
            True,
            True,
            id="error-is-settled-and-failed",
        ),
    ],
)
def test_states(status: dict[str, Any], ready: bool, settled: bool, failed: bool) -> None:
    observed = twinmaker._observation({**SUMMARY, "status": status}, JOB, tags=OURS)
    assert (observed.ready, observed.settled, observed.failed) == (ready, settled, failed)
    assert observed.error_code == status.get("error", {}).get("code")


def _in_region(region: str) -> Any:
    spec = {**TWINMAKER_SPEC["awsIoTTwinMaker"], "region": region}
    return dataclasses.replace(
        TWINMAKER_JOB, spec=SyncJobSpec.model_validate({"awsIoTTwinMaker": spec})
    )


def test_endpoints_data_keeps_only_the_services_the_operator_calls() -> None:
    loader = twinmaker.SharedDataLoader.configured()
    endpoints = loader.load_data("endpoints")
    assert loader.load_data("endpoints") is endpoints  # parsed once, then cached
    partitions = endpoints["partitions"]
    assert {p["partition"] for p in partitions} >= {"aws", "aws-cn", "aws-us-gov"}
    for partition in partitions:
        assert set(partition["services"]) <= {"iottwinmaker", "resourcegroupstaggingapi", "sts"}
    assert "iottwinmaker" in next(p for p in partitions if p["partition"] == "aws")["services"]


async def test_clients_of_every_region_share_one_data_loader_and_resolve_as_boto3_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    provider = twinmaker.TwinMakerProvider(FakeSecrets(), ThreadPoolExecutor(1))
    ours = {region: (await provider._client(_in_region(region)))[0] for region in REGIONS}
    loaders = {id(client._loader) for client in ours.values()}  # type: ignore[attr-defined]
    assert len(loaders) == 1
    for region, client in ours.items():
        stock = boto3.session.Session(region_name=region).client("iottwinmaker")
        assert client.meta.endpoint_url == stock.meta.endpoint_url
        assert client.meta.partition == stock.meta.partition


REGIONS = ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1")
