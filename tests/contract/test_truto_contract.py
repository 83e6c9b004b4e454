"""The Truto emulator against a real httpx client."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncjob_devtools.emulators.admin import EmulatorAdmin, EmulatorAdminError
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.truto import TrutoConfig

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ARGS_SCHEMA = {"type": "object", "properties": {"user_id": {"type": "string"}}}
RESOURCES = [{"resource": "crm/contacts", "method": "list", "query": {"per_page": 100}}]


def job_body(**overrides: Any) -> dict[str, Any]:
    return {
        "integration_name": "hubspot",
        "args_schema": ARGS_SCHEMA,
        "resources": RESOURCES,
    } | overrides


def create_job(truto: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = truto.post("/sync-job", json=job_body(**overrides))
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def assert_truto_error(response: httpx.Response, status: int, phrase: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"statusCode", "error", "message"}
    assert (body["statusCode"], body["error"]) == (status, phrase)
    assert body["message"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dGVzdC10b2tlbg=="}],
)
def test_missing_or_wrong_token_is_401(
    emulators: RunningEmulators, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{emulators.truto_url}/sync-job", headers=headers)
    assert_truto_error(response, 401, "Unauthorized")


def test_a_revoked_token_is_401_until_it_is_added_again(
    emulators: RunningEmulators, truto_admin: EmulatorAdmin
) -> None:
    truto_admin.add_token("revoked-later")
    headers = {"Authorization": "Bearer revoked-later"}
    assert httpx.get(f"{emulators.truto_url}/sync-job", headers=headers).status_code == 200

    truto_admin.revoke_token("revoked-later")
    response = httpx.get(f"{emulators.truto_url}/sync-job", headers=headers)
    assert_truto_error(response, 401, "Unauthorized")
    with pytest.raises(EmulatorAdminError) as unknown:
        truto_admin.revoke_token("revoked-later")
    assert unknown.value.status == 404

    truto_admin.add_token("revoked-later")
    assert httpx.get(f"{emulators.truto_url}/sync-job", headers=headers).status_code == 200


def test_create_get_update_delete_sync_job(truto: httpx.Client) -> None:
    job = create_job(truto, environment_id="env-1")
    assert uuid.UUID(job["id"]).version == 4
    assert TIMESTAMP.match(job["created_at"])
    assert job["created_at"] == job["updated_at"]
    assert {k: job[k] for k in ("integration_name", "args_schema", "resources")} == {
        "integration_name": "hubspot",
        "args_schema": ARGS_SCHEMA,
        "resources": RESOURCES,
    }
    assert truto.get(f"/sync-job/{job['id']}").json() == job

    patched = truto.patch(f"/sync-job/{job['id']}", json={"integration_name": "salesforce"})
    assert patched.status_code == 200
    updated = patched.json()
    assert updated["integration_name"] == "salesforce"
    assert updated["resources"] == RESOURCES
    assert updated["environment_id"] == "env-1"
    assert updated["created_at"] == job["created_at"]
    assert TIMESTAMP.match(updated["updated_at"])
    assert updated["updated_at"] > job["updated_at"]

    deleted = truto.delete(f"/sync-job/{job['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"id": job["id"]})
    assert_truto_error(truto.get(f"/sync-job/{job['id']}"), 404, "Not Found")
    assert_truto_error(truto.delete(f"/sync-job/{job['id']}"), 404, "Not Found")


def test_environment_defaults_to_the_tokens_environment(truto: httpx.Client) -> None:
    assert create_job(truto)["environment_id"] == TrutoConfig().environment_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (job_body(integration_name=None), "integration_name"),
        ({"args_schema": ARGS_SCHEMA, "resources": RESOURCES}, "integration_name"),
        ({"integration_name": "hubspot", "resources": RESOURCES}, "args_schema"),
        (job_body(args_schema={"type": "array"}), "args_schema"),
        (job_body(resources=[{"resource": "crm/contacts"}]), "resources.0.method"),
        (job_body(resources=[{"resource": 7, "method": "list"}]), "resources.0.resource"),
        (job_body(resources=[{"resource": "", "method": "list"}]), "resources.0.resource"),
        (job_body(resources={"resource": "x", "method": "list"}), "resources"),
    ],
)
def test_invalid_sync_job_is_400(truto: httpx.Client, body: dict[str, Any], field: str) -> None:
    response = truto.post("/sync-job", json=body)
    assert_truto_error(response, 400, "Bad Request")
    assert field in response.json()["message"]


def test_patch_is_validated_too(truto: httpx.Client) -> None:
    job = create_job(truto)
    response = truto.patch(f"/sync-job/{job['id']}", json={"resources": [{"method": "get"}]})
    assert_truto_error(response, 400, "Bad Request")
    assert_truto_error(
        truto.post("/sync-job", content=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "Bad Request",
    )
    assert truto.get(f"/sync-job/{job['id']}").json() == job  # unchanged


def test_list_filters_and_pages_with_next_cursor(truto: httpx.Client) -> None:
    hubspot = [create_job(truto) for _ in range(5)]
    other = create_job(truto, integration_name="zendesk", environment_id="env-2")["id"]
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"integration_name": "hubspot", "limit": 2}
    pages = 0
    while True:
        page = truto.get("/sync-job", params=params).json()
        assert set(page) == {"result", "next_cursor", "limit"}
        assert page["limit"] == 2
        pages += 1
        seen += page["result"]
        if page["next_cursor"] is None:
            break
        params["next_cursor"] = page["next_cursor"]
    # Every job once, oldest first (jobs created in the same millisecond in any order).
    assert pages == 3
    assert sorted(job["id"] for job in seen) == sorted(job["id"] for job in hubspot)
    stamps = [job["created_at"] for job in seen]
    assert stamps == sorted(stamps)
    by_environment = truto.get("/sync-job", params={"environment_id": "env-2"}).json()
    assert [job["id"] for job in by_environment["result"]] == [other]
    assert_truto_error(truto.get("/sync-job", params={"limit": 0}), 400, "Bad Request")
    assert_truto_error(truto.get("/sync-job", params={"next_cursor": "junk"}), 400, "Bad Request")


def test_sync_job_runs_progress_and_reference_their_job(truto: httpx.Client) -> None:
    job = create_job(truto)
    body = {"sync_job_id": job["id"], "integrated_account_id": "acct-1", "args": {"user_id": "7"}}
    created = truto.post("/sync-job-run", json=body)
    assert created.status_code == 201
    run = created.json()
    assert (run["status"], run["started_at"], run["resources"]) == ("created", None, RESOURCES)
    deadline = time.monotonic() + 5
    statuses = [run["status"]]
    while statuses[-1] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        status = truto.get(f"/sync-job-run/{run['id']}").json()["status"]
        if status != statuses[-1]:
            statuses.append(status)
    assert statuses == ["created", "running", "completed"]
    listed = truto.get("/sync-job-run", params={"sync_job_id": job["id"]}).json()["result"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert TIMESTAMP.match(listed[0]["finished_at"])

    missing = truto.post("/sync-job-run", json=body | {"sync_job_id": str(uuid.uuid4())})
    assert_truto_error(missing, 404, "Not Found")
    both = truto.post("/sync-job-run", json=body | {"daemon_group_key": "d", "webhook_id": "w"})
    assert_truto_error(both, 400, "Bad Request")
    no_account = truto.post("/sync-job-run", json={"sync_job_id": job["id"]})
    assert "integrated_account_id" in no_account.json()["message"]


@pytest.mark.parametrize(
    ("cron", "valid"),
    [
        ("0 0 * * *", True),
        ("*/15 9-17 * * MON-FRI", True),
        ("0,30 */2 1,15 JAN-JUN 0", True),
        ("0 0 * *", False),
        ("0 0 * * * *", False),
        ("60 0 * * *", False),
        ("0 24 * * *", False),
        ("0 0 0 * *", False),
        ("*/0 * * * *", False),
        ("0 0 * 13 *", False),
        ("5-1 * * * *", False),
        ("@daily", False),
    ],
)
def test_cron_triggers_validate_five_field_cron(
    truto: httpx.Client, cron: str, valid: bool
) -> None:
    job = create_job(truto)
    body = {"sync_job_id": job["id"], "integrated_account_id": "acct-1", "cron_expression": cron}
    response = truto.post("/sync-job-cron-trigger", json=body)
    if valid:
        assert response.status_code == 201
        assert response.json()["cron_expression"] == cron
    else:
        assert_truto_error(response, 400, "Bad Request")
        assert "cron_expression" in response.json()["message"]


def test_cron_trigger_crud_and_cascade_with_its_job(truto: httpx.Client) -> None:
    job = create_job(truto)
    body = {
        "sync_job_id": job["id"],
        "integrated_account_id": "acct-1",
        "cron_expression": "0 * * * *",
    }
    trigger = truto.post("/sync-job-cron-trigger", json=body).json()
    patched = truto.patch(
        f"/sync-job-cron-trigger/{trigger['id']}", json={"cron_expression": "5 * * * *"}
    )
    assert patched.json()["cron_expression"] == "5 * * * *"
    assert patched.json()["integrated_account_id"] == "acct-1"
    bad = truto.patch(f"/sync-job-cron-trigger/{trigger['id']}", json={"cron_expression": "nope"})
    assert_truto_error(bad, 400, "Bad Request")
    run = truto.post("/sync-job-run", json={"sync_job_id": job["id"], "integrated_account_id": "a"})
    truto.delete(f"/sync-job/{job['id']}")
    assert_truto_error(truto.get(f"/sync-job-cron-trigger/{trigger['id']}"), 404, "Not Found")
    assert_truto_error(truto.get(f"/sync-job-run/{run.json()['id']}"), 404, "Not Found")
    assert truto.get("/sync-job-cron-trigger").json()["result"] == []


def test_rate_limit_headers_on_every_response(
    truto: httpx.Client, emulators: RunningEmulators
) -> None:
    for response in (
        truto.get("/sync-job"),
        truto.get(f"/sync-job/{uuid.uuid4()}"),
        httpx.get(f"{emulators.truto_url}/sync-job"),  # 401
    ):
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(
            response.headers
        )
        assert int(response.headers["ratelimit-remaining"]) < int(
            response.headers["ratelimit-limit"]
        )


def test_rate_limit_gives_429_then_recovers_after_the_window() -> None:
    config = TrutoConfig(tokens=frozenset({"t"}), rate_limit=3, rate_limit_window_seconds=1)
    with (
        RunningEmulators(truto=config) as emu,
        httpx.Client(base_url=emu.truto_url, headers={"Authorization": "Bearer t"}) as client,
    ):
        remaining = [client.get("/sync-job").headers["ratelimit-remaining"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        limited = client.get("/sync-job")
        assert_truto_error(limited, 429, "Too Many Requests")
        assert limited.headers["ratelimit-limit"] == "3"
        assert limited.headers["ratelimit-remaining"] == "0"
        reset = int(limited.headers["ratelimit-reset"])
        assert 0 <= reset <= 1
        assert limited.headers["retry-after"] == str(reset)
        time.sleep(1.05)
        assert client.get("/sync-job").status_code == 200


def test_faults_next_n_rate_and_latency(truto: httpx.Client, truto_admin: EmulatorAdmin) -> None:
    job = create_job(truto)
    truto_admin.inject_fault("GetSyncJob", status=503, message="maintenance", next_n=2)
    responses = [truto.get(f"/sync-job/{job['id']}") for _ in range(3)]
    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].json() == {
        "statusCode": 503,
        "error": "Service Unavailable",
        "message": "maintenance",
    }
    assert truto_admin.faults() == []  # next_n used up: the rule removed itself

    truto_admin.inject_fault("ListSyncJobs", status=500, error_rate=0.5)
    failures = sum(truto.get("/sync-job").status_code == 500 for _ in range(200))
    assert 50 < failures < 150
    truto_admin.clear_faults()

    fault = truto_admin.inject_fault("*", latency_ms=200)
    started = time.monotonic()
    truto.get("/sync-job")
    assert time.monotonic() - started >= 0.2
    truto_admin.remove_fault(fault.id)
    assert truto_admin.faults() == []


def test_counters_per_operation_and_object(
    truto: httpx.Client, truto_admin: EmulatorAdmin, emulators: RunningEmulators
) -> None:
    job = create_job(truto)
    truto.get(f"/sync-job/{job['id']}")
    truto.patch(f"/sync-job/{job['id']}", json={"integration_name": "x"})
    httpx.get(f"{emulators.truto_url}/sync-job/{job['id']}")  # 401, still counted
    truto.get("/no-such-thing")
    calls = truto_admin.calls()
    assert calls.operations == {
        "CreateSyncJob": 1,
        "GetSyncJob": 2,
        "UpdateSyncJob": 1,
        "UnknownOperation": 1,
    }
    assert calls.objects[job["id"]] == {"CreateSyncJob": 1, "GetSyncJob": 2, "UpdateSyncJob": 1}


def test_outage_refuses_connections_then_recovers(
    truto: httpx.Client, truto_admin: EmulatorAdmin, retrying: Any
) -> None:
    assert truto.get("/sync-job").status_code == 200
    started = time.monotonic()
    truto_admin.outage(1.0)
    with pytest.raises(httpx.ConnectError):
        truto.get("/sync-job")
    assert retrying(lambda: truto.get("/sync-job"), httpx.ConnectError).status_code == 200
    assert time.monotonic() - started >= 1.0


def test_state_persists_across_restart(tmp_path: Path) -> None:
    config = TrutoConfig(tokens=frozenset({"t"}), persist_path=tmp_path / "truto.json")
    headers = {"Authorization": "Bearer t"}
    with RunningEmulators(truto=config) as emu:
        job = httpx.post(f"{emu.truto_url}/sync-job", json=job_body(), headers=headers).json()
    with RunningEmulators(truto=config) as emu:
        assert httpx.get(f"{emu.truto_url}/sync-job/{job['id']}", headers=headers).json() == job
