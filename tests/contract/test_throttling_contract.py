"""TwinMaker request rates as AWS enforces them, through the real boto3 client: a token bucket
per account and operation, ThrottlingException (the model's 429) beyond it, refilled over
time; off unless asked for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from syncjob_devtools.emulators.admin import EmulatorAdmin, aws_client, twinmaker_client
from syncjob_devtools.emulators.restjson import load_service_model
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.throttling import RequestRate
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig

PARTNER_ROLE = "arn:aws:iam::210987654321:role/Partner"
BURST = 3
PER_SECOND = 0.5  # a token every 2 s: slow next to the calls, however loaded the machine


@pytest.fixture(scope="module")
def throttled() -> Iterator[RunningEmulators]:
    config = TwinMakerConfig(
        throttling=True,
        request_rates={"ListWorkspaces": RequestRate(per_second=PER_SECOND, burst=BURST)},
    )
    with RunningEmulators(twinmaker=config) as running:
        yield running


def _outcomes(tm: Any, calls: int) -> list[str]:
    outcomes = []
    for _ in range(calls):
        try:
            tm.list_workspaces()
            outcomes.append("ok")
        except ClientError as exc:
            error = exc.response
            outcomes.append(
                f"{error['Error']['Code']} {error['ResponseMetadata']['HTTPStatusCode']}"
            )
    return outcomes


def test_calls_beyond_the_burst_are_throttled_with_the_models_429(
    throttled: RunningEmulators,
) -> None:
    with EmulatorAdmin(throttled.twinmaker_url) as admin:
        admin.reset()
        tm = twinmaker_client(throttled.twinmaker_url)
        model_status = load_service_model("iottwinmaker").shape_for("ThrottlingException")
        assert model_status.metadata["error"]["httpStatusCode"] == 429
        assert _outcomes(tm, BURST + 2) == ["ok"] * BURST + ["ThrottlingException 429"] * 2
        assert admin.calls().throttled == {"ListWorkspaces": 2}
        time.sleep(1.1 / PER_SECOND)  # one token back
        assert _outcomes(tm, 2) == ["ok", "ThrottlingException 429"]


def test_each_account_has_its_own_buckets(throttled: RunningEmulators) -> None:
    with EmulatorAdmin(throttled.twinmaker_url) as admin:
        admin.reset()
        own = twinmaker_client(throttled.twinmaker_url)
        assert _outcomes(own, BURST + 1)[-1] == "ThrottlingException 429"
        sts = aws_client("sts", throttled.twinmaker_url)
        session = sts.assume_role(RoleArn=PARTNER_ROLE, RoleSessionName="other-account")
        credentials = session["Credentials"]
        partner = twinmaker_client(
            throttled.twinmaker_url,
            access_key=(credentials["AccessKeyId"], credentials["SecretAccessKey"]),
            session_token=credentials["SessionToken"],
        )
        assert _outcomes(partner, BURST) == ["ok"] * BURST  # another account, a full bucket


def test_throttling_is_off_by_default(emulators: RunningEmulators, tm_admin: EmulatorAdmin) -> None:
    tm = twinmaker_client(emulators.twinmaker_url)
    assert set(_outcomes(tm, 80)) == {"ok"}  # beyond every default burst
    assert tm_admin.calls().throttled == {}


def test_rates_for_operations_not_served_are_refused() -> None:
    with pytest.raises(ValueError, match="not served"):
        TwinMakerConfig(request_rates={"GetEntity": RequestRate(per_second=1, burst=1)})
