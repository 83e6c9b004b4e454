"""The TwinMaker emulator against the real boto3 client and botocore's own service model."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from mypy_boto3_iottwinmaker import IoTTwinMakerClient
from starlette.routing import Route

from syncjob_devtools.emulators.admin import EmulatorAdmin, EmulatorAdminError, aws_client
from syncjob_devtools.emulators.restjson import enum_values, load_service_model
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.twinmaker import SERVED_OPERATIONS, TwinMakerConfig, create_app

ROLE = "arn:aws:iam::123456789012:role/twinmaker-sync"
MODEL = load_service_model("iottwinmaker")
JOB_ARN = re.compile(
    r"^arn:aws:iottwinmaker:us-east-1:123456789012:workspace/plant-1/sync-job/SITEWISE$"
)


def model_status(code: str) -> int:
    status: int = MODEL.shape_for(code).metadata["error"]["httpStatusCode"]
    return status


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def wait_for_state(tm: IoTTwinMakerClient, state: str, workspace: str = "plant-1") -> list[str]:
    """Poll GetSyncJob until ``state``; return the distinct states seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        current = tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)["status"]["state"]
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == state:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"never reached {state}; saw {seen}")


def create_job(tm: IoTTwinMakerClient, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = dict(
        tm.create_sync_job(workspaceId="plant-1", syncSource="SITEWISE", syncRole=ROLE, **extra)
    )
    return response


def test_every_sync_job_and_tagging_operation_in_the_model_is_served() -> None:
    # A botocore update that adds a sync-job operation must fail here, not in production.
    wanted = {
        name
        for name in MODEL.operation_names
        if "SyncJob" in name or "SyncResource" in name or "Tag" in name
    }
    assert wanted <= set(SERVED_OPERATIONS)
    routes = {
        (route.path, method)
        for route in create_app().routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    for name in wanted:
        http = MODEL.operation_model(name).http
        assert (http["requestUri"], http["method"]) in routes, name


def test_create_sync_job_returns_model_shaped_arn_state_and_time(
    tm: IoTTwinMakerClient, workspace: str, conforms: Any
) -> None:
    before = time.time()
    created = create_job(tm, tags={"team": "ops"})
    conforms("CreateSyncJob", created)
    assert JOB_ARN.match(created["arn"])
    assert created["state"] == "CREATING"
    assert isinstance(created["creationDateTime"], datetime)
    assert before - 1 <= created["creationDateTime"].timestamp() <= time.time() + 1
    assert tm.list_tags_for_resource(resourceARN=created["arn"])["tags"] == {"team": "ops"}


def test_sync_job_moves_creating_initializing_active(
    tm: IoTTwinMakerClient, workspace: str, conforms: Any
) -> None:
    created = create_job(tm)
    assert wait_for_state(tm, "ACTIVE") == ["CREATING", "INITIALIZING", "ACTIVE"]
    job = tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    conforms("GetSyncJob", dict(job))
    assert job["arn"] == created["arn"]
    assert job["syncRole"] == ROLE
    assert "error" not in job["status"]
    assert job["updateDateTime"] > job["creationDateTime"]


def test_get_sync_job_finds_the_job_without_the_optional_workspace(
    tm: IoTTwinMakerClient, workspace: str
) -> None:
    create_job(tm)
    assert tm.get_sync_job(syncSource="SITEWISE")["workspaceId"] == workspace


def test_delete_goes_through_deleting_then_the_job_is_gone(
    tm: IoTTwinMakerClient, workspace: str
) -> None:
    create_job(tm)
    assert tm.delete_sync_job(workspaceId=workspace, syncSource="SITEWISE")["state"] == "DELETING"
    assert wait_for_state(tm, "DELETING") == ["DELETING"]
    deadline = time.monotonic() + 5
    while tm.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(ClientError) as excinfo:
        tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as excinfo:
        tm.delete_sync_job(workspaceId=workspace, syncSource="SITEWISE")
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_second_job_for_the_same_workspace_and_source_conflicts(
    tm: IoTTwinMakerClient, workspace: str
) -> None:
    create_job(tm)
    with pytest.raises(ClientError) as excinfo:
        create_job(tm)
    assert error_of(excinfo) == ("ConflictException", model_status("ConflictException"))


def test_job_in_a_missing_workspace_is_not_found(tm: IoTTwinMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        create_job(tm)
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    assert "plant-1" in excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("source", "role", "fragment"),
    [
        ("SITEWISE", "arn:aws:iam::123456789012:user/not-a-role", "regular expression pattern"),
        ("SITEWISE", "arn:aws:iam::12345:role/short-account-id", "regular expression pattern"),
        ("IOT_CORE", ROLE, "Unsupported syncSource"),
    ],
)
def test_bad_role_or_unsupported_source_fails_validation(
    tm: IoTTwinMakerClient, workspace: str, source: str, role: str, fragment: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        tm.create_sync_job(workspaceId=workspace, syncSource=source, syncRole=role)
    assert error_of(excinfo) == ("ValidationException", 400)
    assert fragment in excinfo.value.response["Error"]["Message"]


def test_role_of_another_account_is_access_denied(tm: IoTTwinMakerClient, workspace: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        tm.create_sync_job(
            workspaceId=workspace,
            syncSource="SITEWISE",
            syncRole="arn:aws:iam::999999999999:role/elsewhere",
        )
    assert error_of(excinfo) == ("AccessDeniedException", model_status("AccessDeniedException"))


@pytest.mark.parametrize(
    "code", [shape.name for shape in MODEL.operation_model("CreateSyncJob").error_shapes]
)
def test_each_declared_create_error_reaches_boto3_with_the_model_status(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin, code: str
) -> None:
    tm_admin.inject_fault("CreateSyncJob", code=code, message=f"injected {code}", next_n=1)
    with pytest.raises(ClientError) as excinfo:
        create_job(tm)
    assert error_of(excinfo) == (code, model_status(code))
    assert excinfo.value.response["Error"]["Message"] == f"injected {code}"
    assert create_job(tm)["state"] == "CREATING"  # next_n=1: only one call failed


def test_fault_given_only_a_status_uses_the_operations_declared_code(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin
) -> None:
    fault = tm_admin.inject_fault("ListSyncJobs", status=429)
    assert fault.code == "ThrottlingException"
    with pytest.raises(ClientError) as excinfo:
        tm.list_sync_jobs(workspaceId=workspace)
    assert error_of(excinfo) == ("ThrottlingException", 429)
    assert tm_admin.clear_faults() == 1
    assert tm.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"] == []


def test_workspace_quota_is_service_quota_exceeded(make_tm_client: Any) -> None:
    with RunningEmulators(twinmaker=TwinMakerConfig(max_workspaces=1)) as emu:
        tm = make_tm_client(emu.twinmaker_url)
        tm.create_workspace(workspaceId="first")
        with pytest.raises(ClientError) as excinfo:
            tm.create_workspace(workspaceId="second")
        assert error_of(excinfo) == ("ServiceQuotaExceededException", 402)


def test_workspace_calls(tm: IoTTwinMakerClient, tm_admin: EmulatorAdmin, conforms: Any) -> None:
    created = tm.create_workspace(
        workspaceId="plant-1", description="line 1", role=ROLE, tags={"site": "a"}
    )
    conforms("CreateWorkspace", dict(created))
    fetched = tm.get_workspace(workspaceId=created["arn"])  # takes an id or an ARN
    conforms("GetWorkspace", dict(fetched))
    assert (fetched["workspaceId"], fetched["description"], fetched["role"]) == (
        "plant-1",
        "line 1",
        ROLE,
    )
    tm.update_workspace(workspaceId="plant-1", description="line 2")
    assert tm.get_workspace(workspaceId="plant-1")["description"] == "line 2"
    with pytest.raises(ClientError) as excinfo:
        tm.create_workspace(workspaceId="plant-1")
    assert error_of(excinfo) == ("ConflictException", 409)
    create_job(tm)
    with pytest.raises(ClientError) as excinfo:
        tm.delete_workspace(workspaceId="plant-1")  # still has a sync job
    assert error_of(excinfo) == ("ValidationException", 400)
    tm_admin.remove_sync_job("plant-1")  # out of band: no DELETING phase to wait for
    assert "message" in tm.delete_workspace(workspaceId="plant-1")
    with pytest.raises(ClientError) as excinfo:
        tm.get_workspace(workspaceId="plant-1")
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_list_workspaces_pages_with_next_token(tm: IoTTwinMakerClient, conforms: Any) -> None:
    names = [f"ws-{i}" for i in range(5)]
    for name in names:
        tm.create_workspace(workspaceId=name)
    seen: list[str] = []
    pages = 0
    kwargs: dict[str, Any] = {"maxResults": 2}
    while True:
        page = tm.list_workspaces(**kwargs)
        conforms("ListWorkspaces", dict(page))
        pages += 1
        seen += [w["workspaceId"] for w in page["workspaceSummaries"]]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    assert (pages, seen) == (3, names)


def test_list_sync_jobs_pages_with_next_token(make_tm_client: Any, conforms: Any) -> None:
    # The real service has one source (SITEWISE), so one job per workspace; more
    # sources are configured here only to get several pages.
    sources = frozenset({"SITEWISE", "SOURCE_B", "SOURCE_C"})
    with RunningEmulators(twinmaker=TwinMakerConfig(sync_sources=sources)) as emu:
        tm = make_tm_client(emu.twinmaker_url)
        tm.create_workspace(workspaceId="plant-1")
        for source in sorted(sources):
            tm.create_sync_job(workspaceId="plant-1", syncSource=source, syncRole=ROLE)
        tm.create_workspace(workspaceId="plant-2")  # its job is not plant-1's to list
        tm.create_sync_job(workspaceId="plant-2", syncSource="SITEWISE", syncRole=ROLE)
        first = tm.list_sync_jobs(workspaceId="plant-1", maxResults=2)
        conforms("ListSyncJobs", dict(first))
        second = tm.list_sync_jobs(
            workspaceId="plant-1", maxResults=2, nextToken=first["nextToken"]
        )
        listed = [
            s["syncSource"] for s in [*first["syncJobSummaries"], *second["syncJobSummaries"]]
        ]
        assert listed == sorted(sources)
        assert "nextToken" not in second
        assert first["syncJobSummaries"][0]["status"]["state"] == "CREATING"


def test_list_sync_jobs_of_a_missing_workspace_is_not_found(tm: IoTTwinMakerClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        tm.list_sync_jobs(workspaceId="nowhere")
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_bad_next_token_is_a_validation_error(tm: IoTTwinMakerClient, workspace: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        tm.list_sync_jobs(workspaceId=workspace, nextToken="not-a-token!")
    assert error_of(excinfo) == ("ValidationException", 400)


def test_list_sync_resources_pages_and_filters(
    tm: IoTTwinMakerClient, workspace: str, conforms: Any
) -> None:
    create_job(tm)
    wait_for_state(tm, "ACTIVE")
    resources: list[Any] = []
    kwargs: dict[str, Any] = {"maxResults": 3}
    while True:
        page = tm.list_sync_resources(workspaceId=workspace, syncSource="SITEWISE", **kwargs)
        conforms("ListSyncResources", dict(page))
        resources += page["syncResources"]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    types = {r["resourceType"] for r in resources}
    assert types == set(enum_values(MODEL, "SyncResourceType"))
    assert len({r["externalId"] for r in resources}) == len(resources) > 3
    assert {r["status"]["state"] for r in resources} == {"IN_SYNC"}
    entities = tm.list_sync_resources(
        workspaceId=workspace,
        syncSource="SITEWISE",
        filters=[{"resourceType": "ENTITY"}],
    )["syncResources"]
    assert entities == [r for r in resources if r["resourceType"] == "ENTITY"]
    one = tm.list_sync_resources(
        workspaceId=workspace,
        syncSource="SITEWISE",
        filters=[{"resourceType": "ENTITY"}, {"externalId": entities[0]["externalId"]}],
    )["syncResources"]
    assert one == entities[:1]


def test_tags_on_jobs_and_workspaces(tm: IoTTwinMakerClient, workspace: str) -> None:
    arn = create_job(tm, tags={"a": "1"})["arn"]
    tm.tag_resource(resourceARN=arn, tags={"b": "2", "c": "3"})
    assert tm.list_tags_for_resource(resourceARN=arn)["tags"] == {"a": "1", "b": "2", "c": "3"}
    page = tm.list_tags_for_resource(resourceARN=arn, maxResults=2)
    rest = tm.list_tags_for_resource(resourceARN=arn, nextToken=page["nextToken"])
    assert page["tags"] | rest["tags"] == {"a": "1", "b": "2", "c": "3"}
    tm.untag_resource(resourceARN=arn, tagKeys=["a", "c"])
    assert tm.list_tags_for_resource(resourceARN=arn)["tags"] == {"b": "2"}
    workspace_arn = tm.get_workspace(workspaceId=workspace)["arn"]
    tm.tag_resource(resourceARN=workspace_arn, tags={"w": "x"})
    assert tm.list_tags_for_resource(resourceARN=workspace_arn)["tags"] == {"w": "x"}
    with pytest.raises(ClientError) as excinfo:
        tm.tag_resource(resourceARN=arn, tags={f"k{i}": "v" for i in range(50)})
    assert error_of(excinfo) == ("TooManyTagsException", 400)
    with pytest.raises(ClientError) as excinfo:
        tm.list_tags_for_resource(resourceARN=arn.replace("plant-1", "plant-9"))
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)
    elsewhere = arn.split(":")
    elsewhere[3] = "eu-west-9"  # the same job's name in another region names nothing here
    with pytest.raises(ClientError) as excinfo:
        tm.list_tags_for_resource(resourceARN=":".join(elsewhere))
    assert error_of(excinfo) == ("ResourceNotFoundException", 404)


def test_tagging_api_lists_the_owner_tagged_jobs_of_the_region_in_pages(
    tm: IoTTwinMakerClient, emulators: RunningEmulators
) -> None:
    arns: dict[int, str] = {}
    for index in range(5):
        tm.create_workspace(workspaceId=f"site-{index}")
        tags = {"syncjob.dev/owner": f"ns/job-{index}"} if index != 4 else {"other": "x"}
        arns[index] = tm.create_sync_job(
            workspaceId=f"site-{index}", syncSource="SITEWISE", syncRole=ROLE, tags=tags
        )["arn"]
    tagging = aws_client("resourcegroupstaggingapi", emulators.twinmaker_url)
    found: dict[str, dict[str, str]] = {}
    token = ""
    pages = 0
    while True:
        page = tagging.get_resources(
            PaginationToken=token,
            TagFilters=[{"Key": "syncjob.dev/owner"}],
            ResourceTypeFilters=["iottwinmaker"],
            ResourcesPerPage=2,
        )
        pages += 1
        for mapping in page["ResourceTagMappingList"]:
            found[mapping["ResourceARN"]] = {t["Key"]: t["Value"] for t in mapping["Tags"]}
        token = page["PaginationToken"]
        if not token:
            break
    assert pages == 2  # 4 owner-tagged jobs, 2 per page: the job tagged otherwise is left out
    assert found == {arns[i]: {"syncjob.dev/owner": f"ns/job-{i}"} for i in range(4)}
    with pytest.raises(ClientError) as excinfo:
        tagging.get_resources(ResourcesPerPage=500)
    assert error_of(excinfo) == ("InvalidParameterException", 400)


@pytest.mark.parametrize("code", enum_values(MODEL, "ErrorCode"))
def test_a_job_can_be_made_to_end_in_error_with_any_model_code(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin, code: str
) -> None:
    create_job(tm)
    assert tm_admin.sync_job_outcome(workspace, code=code, message="boom") == "existing"
    wait_for_state(tm, "ERROR")
    status = tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)["status"]
    assert status == {"state": "ERROR", "error": {"code": code, "message": "boom"}}
    summary = tm.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"][0]
    assert summary["status"] == status


def test_outcome_for_a_future_job_and_recovery(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin
) -> None:
    assert tm_admin.sync_job_outcome(workspace, code="SYNC_CREATING_ERROR") == "next-create"
    create_job(tm)
    assert wait_for_state(tm, "ERROR") == ["CREATING", "INITIALIZING", "ERROR"]
    resources = tm.list_sync_resources(workspaceId=workspace, syncSource="SITEWISE")
    assert {r["status"]["state"] for r in resources["syncResources"]} == {"ERROR"}
    tm_admin.sync_job_outcome(workspace, state="ACTIVE")
    assert tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)["status"] == {
        "state": "ACTIVE"
    }
    with pytest.raises(EmulatorAdminError) as excinfo:
        tm_admin.sync_job_outcome(workspace, code="NOT_A_MODEL_CODE")
    assert excinfo.value.status == 422


def test_unsigned_request_is_rejected_like_aws(emulators: RunningEmulators) -> None:
    response = httpx.get(f"{emulators.twinmaker_url}/sync-jobs/SITEWISE?workspace=plant-1")
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}


def test_signature_for_another_service_or_region_is_rejected(
    emulators: RunningEmulators, sign: Any, make_tm_client: Any
) -> None:
    url = f"{emulators.twinmaker_url}/workspaces-list"
    with httpx.Client() as client:
        response = client.send(sign("POST", url, b"{}", service="s3"))
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (
        403,
        "InvalidSignatureException",
    )
    with pytest.raises(ClientError) as excinfo:
        make_tm_client(emulators.twinmaker_url, region="eu-west-1").list_workspaces()
    assert error_of(excinfo) == ("InvalidSignatureException", 403)


def test_server_side_validation_matches_the_model(
    emulators: RunningEmulators, workspace: str, sign: Any
) -> None:
    # boto3 would refuse maxResults=500 itself; the emulator must refuse it too.
    url = f"{emulators.twinmaker_url}/workspaces/{workspace}/sync-jobs-list"
    with httpx.Client() as client:
        response = client.send(sign("POST", url, json.dumps({"maxResults": 500}).encode()))
        assert response.status_code == 400
        assert response.headers["x-amzn-ErrorType"] == "ValidationException"
        assert "Member must have value less than or equal to 200" in response.json()["message"]
        unknown = client.send(sign("GET", f"{emulators.twinmaker_url}/no-such-path"))
        assert (unknown.status_code, unknown.headers["x-amzn-ErrorType"]) == (
            404,
            "UnknownOperationException",
        )


def test_counters_count_every_call_including_rejected_ones(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin, emulators: RunningEmulators
) -> None:
    create_job(tm)
    tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    httpx.get(f"{emulators.twinmaker_url}/sync-jobs/SITEWISE?workspace={workspace}")  # unsigned
    with pytest.raises(ClientError):
        create_job(tm)  # conflict
    calls = tm_admin.calls()
    assert calls.operations["GetSyncJob"] == 2
    assert calls.operations["CreateSyncJob"] == 2
    assert calls.objects[f"{workspace}/SITEWISE"] == {"CreateSyncJob": 2, "GetSyncJob": 2}
    assert calls.objects[workspace] == {"CreateWorkspace": 1}
    assert tm_admin.count("GetSyncJob", f"{workspace}/SITEWISE") == 2
    tm_admin.reset(state=False)
    assert tm_admin.calls().operations == {}
    assert tm.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)["workspaceId"]


def test_latency_fault_delays_the_call(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin
) -> None:
    tm_admin.inject_fault("GetWorkspace", latency_ms=400)
    started = time.monotonic()
    tm.get_workspace(workspaceId=workspace)
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    tm.list_workspaces()  # other operations are unaffected
    assert time.monotonic() - started < 0.4


def test_outage_refuses_connections_then_recovers(
    tm: IoTTwinMakerClient, workspace: str, tm_admin: EmulatorAdmin, retrying: Any
) -> None:
    tm.get_workspace(workspaceId=workspace)  # a pooled keep-alive connection exists
    tm_admin.outage(1.0)
    with pytest.raises(EndpointConnectionError):
        tm.get_workspace(workspaceId=workspace)
    recovered = retrying(lambda: tm.get_workspace(workspaceId=workspace), EndpointConnectionError)
    assert recovered["workspaceId"] == workspace


def test_state_persists_across_restart(tmp_path: Path, make_tm_client: Any) -> None:
    state = tmp_path / "twinmaker.json"
    config = TwinMakerConfig(transition_seconds=0.2, persist_path=state)
    with RunningEmulators(twinmaker=config) as emu:
        tm = make_tm_client(emu.twinmaker_url)
        tm.create_workspace(workspaceId="plant-1")
        arn = create_job(tm, tags={"kept": "yes"})["arn"]
    assert state.exists()
    time.sleep(0.5)  # the job keeps moving while the emulator is down
    with RunningEmulators(twinmaker=config) as emu:
        tm = make_tm_client(emu.twinmaker_url)
        job = tm.get_sync_job(syncSource="SITEWISE", workspaceId="plant-1")
        assert (job["arn"], job["status"]["state"]) == (arn, "ACTIVE")
        assert tm.list_tags_for_resource(resourceARN=arn)["tags"] == {"kept": "yes"}
