"""Fixtures for contract tests: real boto3 and httpx clients against the emulators."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.model import ListShape, Shape, StructureShape
from mypy_boto3_iottwinmaker import IoTTwinMakerClient

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.restjson import load_service_model
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.truto import TrutoConfig
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig

TRANSITION = 0.2
TOKEN = "test-token"
# A role in another account that demands an external id of whoever assumes it.
PARTNER_ROLE = "arn:aws:iam::210987654321:role/PartnerTwinMaker"
PARTNER_EXTERNAL_ID = "partner-7f3a"

# Helpers reach the tests as fixtures: test modules cannot import this conftest reliably.
T = TypeVar("T")
TwinMakerClientFactory = Callable[..., IoTTwinMakerClient]
Signer = Callable[..., httpx.Request]
Conformance = Callable[[str, dict[str, Any]], None]


def signed(
    method: str, url: str, body: bytes = b"", service: str = "iottwinmaker"
) -> httpx.Request:
    """A SigV4-signed request built without boto3's parameter validation."""
    aws = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials("emulator", "emulator"), service, "us-east-1").add_auth(aws)
    return httpx.Request(method, url, content=body, headers=dict(aws.headers.items()))


def assert_conforms(operation: str, response: dict[str, Any]) -> None:
    """Every member the model marks required is present, at every depth."""
    output = load_service_model("iottwinmaker").operation_model(operation).output_shape
    assert output is not None
    _check_required(output, response, operation)


def _check_required(shape: Shape, value: Any, path: str) -> None:
    if isinstance(shape, StructureShape):
        assert isinstance(value, dict), path
        missing = [name for name in shape.required_members if name not in value]
        assert not missing, f"{path} lacks required {missing}"
        for name, member in shape.members.items():
            if name in value:
                _check_required(member, value[name], f"{path}.{name}")
    elif isinstance(shape, ListShape):
        for index, item in enumerate(value):
            _check_required(shape.member, item, f"{path}[{index}]")


def eventually(
    action: Callable[[], T], retry_on: type[BaseException] | tuple[type[BaseException], ...]
) -> T:
    """``action()`` once it stops raising ``retry_on`` (outages end on a timer, not on cue)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return action()
        except retry_on:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def emulators() -> Iterator[RunningEmulators]:
    with RunningEmulators(
        twinmaker=TwinMakerConfig(
            transition_seconds=TRANSITION, role_external_ids={PARTNER_ROLE: PARTNER_EXTERNAL_ID}
        ),
        truto=TrutoConfig(tokens=frozenset({TOKEN}), transition_seconds=TRANSITION),
    ) as running:
        yield running


@pytest.fixture(scope="session")
def tm_admin(emulators: RunningEmulators) -> Iterator[EmulatorAdmin]:
    with EmulatorAdmin(emulators.twinmaker_url) as admin:
        yield admin


@pytest.fixture(scope="session")
def truto_admin(emulators: RunningEmulators) -> Iterator[EmulatorAdmin]:
    with EmulatorAdmin(emulators.truto_url) as admin:
        yield admin


@pytest.fixture(autouse=True)
def _fresh_emulators(tm_admin: EmulatorAdmin, truto_admin: EmulatorAdmin) -> None:
    tm_admin.reset()
    truto_admin.reset()


@pytest.fixture(scope="session")
def tm(emulators: RunningEmulators) -> IoTTwinMakerClient:
    return twinmaker_client(emulators.twinmaker_url)


@pytest.fixture(scope="session")
def truto(emulators: RunningEmulators) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=emulators.truto_url, headers=headers, timeout=5) as client:
        yield client


@pytest.fixture(scope="session")
def make_tm_client() -> TwinMakerClientFactory:
    return twinmaker_client


@pytest.fixture(scope="session")
def sign() -> Signer:
    return signed


@pytest.fixture(scope="session")
def conforms() -> Conformance:
    return assert_conforms


@pytest.fixture(scope="session")
def retrying() -> Callable[..., Any]:
    return eventually


@pytest.fixture
def workspace(tm: IoTTwinMakerClient) -> str:
    tm.create_workspace(workspaceId="plant-1")
    return "plant-1"
