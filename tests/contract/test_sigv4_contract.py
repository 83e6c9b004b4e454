"""The TwinMaker emulator verifies SigV4 as AWS does, through the real boto3 clients: the
signature's HMAC against the secret of a known access key, or of session credentials its STS
issued, with their token and expiry; and it records which key signed each call."""

from __future__ import annotations

import time
from typing import Any

import boto3
import botocore.config
import httpx
import pytest
from botocore.exceptions import ClientError

from syncjob_devtools.emulators.admin import EmulatorAdmin, EmulatorAdminError
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.sigv4 import DEFAULT_AWS_CREDENTIALS

ROLE = "arn:aws:iam::123456789012:role/TwinMakerSync"


def client(url: str, service: str, key: str, secret: str, token: str | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=botocore.config.Config(retries={"total_max_attempts": 1}, inject_host_prefix=False),
    )


def refused(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as excinfo:
        call()
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def session(emulators: RunningEmulators) -> dict[str, Any]:
    sts = client(emulators.twinmaker_url, "sts", "emulator", "emulator")
    credentials: dict[str, Any] = sts.assume_role(RoleArn=ROLE, RoleSessionName="sigv4-test")[
        "Credentials"
    ]
    return credentials


@pytest.mark.parametrize(("key", "secret"), sorted(DEFAULT_AWS_CREDENTIALS.items()))
def test_the_default_keys_sign_successfully(
    emulators: RunningEmulators, key: str, secret: str
) -> None:
    tm = client(emulators.twinmaker_url, "iottwinmaker", key, secret)
    assert tm.list_workspaces()["workspaceSummaries"] == []


def test_a_known_key_with_the_wrong_secret_is_an_invalid_signature(
    emulators: RunningEmulators,
) -> None:
    tm = client(emulators.twinmaker_url, "iottwinmaker", "AKIAEXAMPLEEXAMPLE00", "not-the-secret")
    code, status, message = refused(tm.list_workspaces)
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match")


def test_an_unknown_access_key_is_an_unrecognized_client(emulators: RunningEmulators) -> None:
    tm = client(emulators.twinmaker_url, "iottwinmaker", "AKIANOBODYKNOWSTHIS", "whatever")
    code, status, message = refused(tm.list_workspaces)
    assert (code, status) == ("UnrecognizedClientException", 403)
    assert message == "The security token included in the request is invalid."


def test_a_tampered_body_no_longer_matches_its_signature(
    emulators: RunningEmulators, sign: Any
) -> None:
    request = sign("POST", f"{emulators.twinmaker_url}/workspaces-list", b'{"maxResults": 1}')
    tampered = httpx.Request(
        "POST", request.url, content=b'{"maxResults": 2}', headers=request.headers
    )
    with httpx.Client() as http:
        assert http.send(request).status_code == 200
        response = http.send(tampered)
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (
        403,
        "InvalidSignatureException",
    )


def test_sts_session_credentials_sign_until_they_expire(
    emulators: RunningEmulators, tm_admin: EmulatorAdmin
) -> None:
    issued = session(emulators)
    key, secret, token = issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]
    tm = client(emulators.twinmaker_url, "iottwinmaker", key, secret, token)
    assert tm.list_workspaces()["workspaceSummaries"] == []
    assert tm_admin.calls().signers[key] == {"ListWorkspaces": 1}
    known = {c.access_key_id: c for c in tm_admin.credentials()}
    assert (known[key].kind, known[key].role_arn) == ("session", ROLE)
    assert known["emulator"].kind == "static"

    without_token = client(emulators.twinmaker_url, "iottwinmaker", key, secret)
    assert refused(without_token.list_workspaces)[:2] == ("UnrecognizedClientException", 403)

    # The same session, its hour over.
    tm_admin.add_credentials(key, secret, session_token=token, expires_at=time.time() - 1)
    code, status, message = refused(tm.list_workspaces)
    assert (code, status) == ("ExpiredTokenException", 403)
    assert message == "The security token included in the request is expired"


def test_keys_added_at_run_time_are_accepted(
    emulators: RunningEmulators, tm_admin: EmulatorAdmin
) -> None:
    tm = client(emulators.twinmaker_url, "iottwinmaker", "AKIALATECOMER", "late-secret")
    assert refused(tm.list_workspaces)[0] == "UnrecognizedClientException"
    tm_admin.add_credentials("AKIALATECOMER", "late-secret")
    assert tm.list_workspaces()["workspaceSummaries"] == []


def test_a_revoked_key_is_refused_until_it_is_added_again(
    emulators: RunningEmulators, tm_admin: EmulatorAdmin
) -> None:
    tm_admin.add_credentials("AKIAREVOKEDLATER", "revoked-secret")
    tm = client(emulators.twinmaker_url, "iottwinmaker", "AKIAREVOKEDLATER", "revoked-secret")
    assert tm.list_workspaces()["workspaceSummaries"] == []

    tm_admin.remove_credentials("AKIAREVOKEDLATER")
    assert refused(tm.list_workspaces)[:2] == ("UnrecognizedClientException", 403)
    assert "AKIAREVOKEDLATER" not in {c.access_key_id for c in tm_admin.credentials()}
    with pytest.raises(EmulatorAdminError) as unknown:
        tm_admin.remove_credentials("AKIAREVOKEDLATER")
    assert unknown.value.status == 404

    tm_admin.add_credentials("AKIAREVOKEDLATER", "revoked-secret")
    assert tm.list_workspaces()["workspaceSummaries"] == []


def test_sts_and_the_tagging_api_verify_signatures_too(emulators: RunningEmulators) -> None:
    sts = client(emulators.twinmaker_url, "sts", "emulator", "wrong")
    assert refused(lambda: sts.assume_role(RoleArn=ROLE, RoleSessionName="x1"))[:2] == (
        "InvalidSignatureException",
        403,
    )
    tagging = client(emulators.twinmaker_url, "resourcegroupstaggingapi", "emulator", "wrong")
    assert refused(tagging.get_resources)[:2] == ("InvalidSignatureException", 403)
