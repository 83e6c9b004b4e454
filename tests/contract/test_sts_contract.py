"""The emulator's STS AssumeRole through the real boto3 STS client, as the operator assumes a
role per SyncJob: credentials with an expiry, external ids enforced, STS's error shapes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from syncjob_devtools.emulators.admin import EmulatorAdmin, aws_client
from syncjob_devtools.emulators.server import RunningEmulators
from tests.contract.conftest import PARTNER_EXTERNAL_ID, PARTNER_ROLE

OPEN_ROLE = "arn:aws:iam::123456789012:role/TwinMakerSync"


@pytest.fixture
def sts(emulators: RunningEmulators) -> Any:
    return aws_client("sts", emulators.twinmaker_url)


def test_assume_role_returns_session_credentials_that_expire(
    sts: Any, tm_admin: EmulatorAdmin
) -> None:
    answer = sts.assume_role(RoleArn=OPEN_ROLE, RoleSessionName="syncjob-operator")
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA")
    assert credentials["SecretAccessKey"]
    assert credentials["SessionToken"]
    left = credentials["Expiration"] - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=55) < left <= datetime.timedelta(hours=1)
    user = answer["AssumedRoleUser"]
    assert user["Arn"] == "arn:aws:sts::123456789012:assumed-role/TwinMakerSync/syncjob-operator"
    assert tm_admin.count("AssumeRole") == 1


def test_a_role_demanding_an_external_id_refuses_a_missing_or_wrong_one(sts: Any) -> None:
    for extra in ({}, {"ExternalId": "not-it"}):
        with pytest.raises(ClientError) as refused:
            sts.assume_role(RoleArn=PARTNER_ROLE, RoleSessionName="s1", **extra)
        error = refused.value.response
        assert error["Error"]["Code"] == "AccessDenied"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert PARTNER_ROLE in error["Error"]["Message"]
    answer = sts.assume_role(
        RoleArn=PARTNER_ROLE, RoleSessionName="s1", ExternalId=PARTNER_EXTERNAL_ID
    )
    assert answer["AssumedRoleUser"]["Arn"].startswith("arn:aws:sts::210987654321:assumed-role/")


@pytest.mark.parametrize(
    ("role", "session"),
    [("arn:aws:iam::12345:user-not-a-role", "good-name"), (OPEN_ROLE, "bad name with spaces")],
    ids=["role-arn", "session-name"],
)
def test_malformed_input_is_a_validation_error(sts: Any, role: str, session: str) -> None:
    with pytest.raises(ClientError) as refused:
        sts.assume_role(RoleArn=role, RoleSessionName=session)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
