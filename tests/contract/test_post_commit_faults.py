"""Faults after the commit: the write takes effect, then the client sees a 5xx, a reset
connection or no answer before its timeout, through the real boto3 and httpx clients. A
later read shows the write, as with a real provider whose response was lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from mypy_boto3_iottwinmaker import IoTTwinMakerClient

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators

ROLE = "arn:aws:iam::123456789012:role/twinmaker-sync"
SLOW = "slower than the timeout"
# The client's read timeout in that mode; the others wait long enough for any answer.
CLIENT_TIMEOUT_SECONDS = {SLOW: 1.0}
PATIENT_SECONDS = 30.0
SLOWER_THAN_TIMEOUT_MS = 2500
# Each mode: the fault's fields, and what boto3 / httpx raise for it.
MODES: dict[str, dict[str, Any]] = {
    "5xx": {"status": 500, "after_commit": True},
    "dropped connection": {"drop_connection": True, "after_commit": True},
    SLOW: {"response_delay_ms": SLOWER_THAN_TIMEOUT_MS},
}
BOTO3_SEES: dict[str, type[Exception]] = {
    "5xx": ClientError,
    "dropped connection": ConnectionClosedError,
    SLOW: ReadTimeoutError,
}
HTTPX_SEES: dict[str, tuple[type[Exception], ...]] = {
    "5xx": (httpx.HTTPStatusError,),
    "dropped connection": (httpx.ReadError, httpx.RemoteProtocolError),
    SLOW: (httpx.ReadTimeout,),
}


@dataclass(frozen=True)
class TwinMakerWrite:
    """Arrange with a plain client, write with the faulted one, then read what was committed."""

    operation: str
    arrange: Callable[[IoTTwinMakerClient], str]  # the job's ARN, or "" before create
    write: Callable[[IoTTwinMakerClient, str], object]
    committed: Callable[[IoTTwinMakerClient, str], bool]


def _job(tm: IoTTwinMakerClient) -> str:
    return tm.create_sync_job(
        workspaceId="plant-1", syncSource="SITEWISE", syncRole=ROLE, tags={"kept": "1"}
    )["arn"]


def _job_state(tm: IoTTwinMakerClient) -> str:
    """The job's state, or "gone" (a deleted job is listed DELETING for one transition)."""
    listed = tm.list_sync_jobs(workspaceId="plant-1")["syncJobSummaries"]
    return listed[0]["status"]["state"] if listed else "gone"


def _tags(tm: IoTTwinMakerClient, arn: str) -> dict[str, str]:
    return dict(tm.list_tags_for_resource(resourceARN=arn)["tags"])


TWINMAKER_WRITES = [
    TwinMakerWrite(
        "CreateSyncJob",
        arrange=lambda tm: "",
        write=lambda tm, arn: _job(tm),
        committed=lambda tm, arn: _job_state(tm) != "gone",
    ),
    TwinMakerWrite(
        "TagResource",
        arrange=_job,
        write=lambda tm, arn: tm.tag_resource(resourceARN=arn, tags={"added": "yes"}),
        committed=lambda tm, arn: _tags(tm, arn) == {"kept": "1", "added": "yes"},
    ),
    TwinMakerWrite(
        "UntagResource",
        arrange=_job,
        write=lambda tm, arn: tm.untag_resource(resourceARN=arn, tagKeys=["kept"]),
        committed=lambda tm, arn: _tags(tm, arn) == {},
    ),
    TwinMakerWrite(
        "DeleteSyncJob",
        arrange=_job,
        write=lambda tm, arn: tm.delete_sync_job(workspaceId="plant-1", syncSource="SITEWISE"),
        committed=lambda tm, arn: _job_state(tm) in ("DELETING", "gone"),
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TWINMAKER_WRITES, ids=lambda case: case.operation)
def test_twinmaker_write_commits_although_boto3_sees_the_failure(
    emulators: RunningEmulators,
    tm: IoTTwinMakerClient,
    tm_admin: EmulatorAdmin,
    workspace: str,
    case: TwinMakerWrite,
    mode: str,
) -> None:
    arn = case.arrange(tm)
    tm_admin.inject_fault(case.operation, next_n=1, **MODES[mode])
    timeout = CLIENT_TIMEOUT_SECONDS.get(mode, PATIENT_SECONDS)
    faulted = twinmaker_client(emulators.twinmaker_url, read_timeout=timeout)
    with pytest.raises(BOTO3_SEES[mode]) as seen:
        case.write(faulted, arn)
    if isinstance(seen.value, ClientError):
        assert seen.value.response["Error"]["Code"] == "InternalServerException"
    assert tm_admin.count(case.operation) == 1  # one attempt, no retry hid the failure
    assert case.committed(tm, arn)


@dataclass(frozen=True)
class TrutoWrite:
    operation: str
    arrange: Callable[[httpx.Client], str]  # the job's id, or "" before create
    write: Callable[[httpx.Client, str], httpx.Response]
    committed: Callable[[httpx.Client, str], bool]


JOB = {"integration_name": "hubspot", "args_schema": {"type": "object", "properties": {}}}


def _truto_job(truto: httpx.Client) -> str:
    response = truto.post("/sync-job", json=JOB)
    response.raise_for_status()
    return str(response.json()["id"])


def _integration_names(truto: httpx.Client) -> list[str]:
    listed = truto.get("/sync-job").raise_for_status().json()["result"]
    return [job["integration_name"] for job in listed]


TRUTO_WRITES = [
    TrutoWrite(
        "CreateSyncJob",
        arrange=lambda truto: "",
        write=lambda truto, job: truto.post("/sync-job", json=JOB),
        committed=lambda truto, job: _integration_names(truto) == ["hubspot"],
    ),
    TrutoWrite(
        "UpdateSyncJob",
        arrange=_truto_job,
        write=lambda truto, job: truto.patch(
            f"/sync-job/{job}", json={"integration_name": "salesforce"}
        ),
        committed=lambda truto, job: _integration_names(truto) == ["salesforce"],
    ),
    TrutoWrite(
        "DeleteSyncJob",
        arrange=_truto_job,
        write=lambda truto, job: truto.delete(f"/sync-job/{job}"),
        committed=lambda truto, job: truto.get(f"/sync-job/{job}").status_code == 404,
    ),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", TRUTO_WRITES, ids=lambda case: case.operation)
def test_truto_write_commits_although_httpx_sees_the_failure(
    emulators: RunningEmulators,
    truto: httpx.Client,
    truto_admin: EmulatorAdmin,
    case: TrutoWrite,
    mode: str,
) -> None:
    job = case.arrange(truto)
    truto_admin.inject_fault(case.operation, next_n=1, **MODES[mode])
    with (
        httpx.Client(
            base_url=emulators.truto_url,
            headers=truto.headers,
            timeout=CLIENT_TIMEOUT_SECONDS.get(mode, PATIENT_SECONDS),
        ) as faulted,
        pytest.raises(HTTPX_SEES[mode]),
    ):
        case.write(faulted, job).raise_for_status()
    assert truto_admin.count(case.operation) == 1
    assert case.committed(truto, job)


def test_a_failure_before_the_commit_leaves_nothing(
    tm: IoTTwinMakerClient, tm_admin: EmulatorAdmin, workspace: str
) -> None:
    """The default, for contrast: the same fault without after_commit stops the write."""
    tm_admin.inject_fault("CreateSyncJob", drop_connection=True, next_n=1)
    with pytest.raises(ConnectionClosedError):
        _job(tm)
    assert tm.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"] == []


def test_a_post_commit_fault_at_a_rate_fails_some_writes_and_commits_all(
    truto: httpx.Client, truto_admin: EmulatorAdmin
) -> None:
    truto_admin.inject_fault("CreateSyncJob", status=503, after_commit=True, error_rate=0.5)
    statuses = [truto.post("/sync-job", json=JOB).status_code for _ in range(60)]
    assert 10 < statuses.count(503) < 50
    assert statuses.count(201) == 60 - statuses.count(503)
    assert len(_integration_names(truto)) == 60
