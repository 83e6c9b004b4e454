"""SyncJobs driven with kubectl through their whole life, against the real control plane, the
operator as its own process, and the emulators reached through real boto3 and httpx."""

from __future__ import annotations

import time
from typing import Any

import botocore.exceptions
import pytest

from syncjob_devtools.localrun import OperatorProcess
from syncjob_operator.model import CREATE_PENDING_ANNOTATION, EXTERNAL_ID_ANNOTATION
from syncjob_operator.providers.twinmaker import OWNER_TAG
from tests.e2e.conftest import (
    Emulators,
    get_syncjob,
    has_event,
    token_secret,
    truto_job,
    twinmaker_job,
    wait_condition,
    wait_ready,
)
from tests.support.kube import Cli, condition, wait_until

pytestmark = pytest.mark.usefixtures("operator")


def test_twinmaker_job_is_created_and_becomes_ready(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(
        twinmaker_job("plant", workspace, provider={"tags": {"team": "a"}}), "-n", namespace
    )

    obj = wait_ready(kubectl, namespace, "plant")

    remote = obj["status"]["remote"]
    assert (
        remote["id"]
        == f"arn:aws:iottwinmaker:us-east-1:123456789012:workspace/{workspace}/sync-job/SITEWISE"
    )
    assert remote["state"] == "ACTIVE"
    assert remote["createdAt"].endswith("Z")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["metadata"]["finalizers"] == ["syncjob.dev/finalizer"]
    assert condition(obj, "Synced")["status"] == "True"  # type: ignore[index]
    job = emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    assert job["syncRole"].endswith("role/TwinMakerSync")
    assert emulators.twinmaker_admin.count("CreateSyncJob", f"{workspace}/SITEWISE") == 1
    assert has_event(kubectl, namespace, "plant", "CreatedRemoteJob")
    # The printer columns and the category listing read the same status.
    row = kubectl.run("get", "all-syncjob", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:5] == ["AWSIoTTwinMaker", "ACTIVE", "True", "True"]


def test_truto_job_is_created_and_becomes_ready(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("contacts", f"crm-{namespace}"), "-n", namespace)

    obj = wait_ready(kubectl, namespace, "contacts")

    jobs = emulators.truto_jobs(f"crm-{namespace}")
    assert [j["id"] for j in jobs] == [obj["status"]["remote"]["id"]]
    assert jobs[0]["resources"] == [{"resource": "crm/contacts", "method": "list"}]
    assert obj["status"]["remote"]["state"] == "PRESENT"
    assert obj["status"]["remote"]["upToDate"] is True
    annotations = obj["metadata"]["annotations"]
    assert CREATE_PENDING_ANNOTATION not in annotations  # the crash guard is cleared
    assert annotations[EXTERNAL_ID_ANNOTATION] == obj["status"]["remote"]["id"]


def test_twinmaker_error_state_is_mirrored_with_code_and_message(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    emulators.twinmaker_admin.sync_job_outcome(
        workspace, code="SYNC_CREATING_ERROR", message="role cannot read SiteWise assets"
    )
    kubectl.apply(twinmaker_job("broken", workspace), "-n", namespace)

    obj = wait_condition(kubectl, namespace, "broken", "Ready", "False", "RemoteError")

    assert obj["status"]["remote"]["state"] == "ERROR"
    assert obj["status"]["remote"]["errorCode"] == "SYNC_CREATING_ERROR"
    assert obj["status"]["remote"]["errorMessage"] == "role cannot read SiteWise assets"
    assert "SYNC_CREATING_ERROR" in condition(obj, "Ready")["message"]  # type: ignore[index]
    assert has_event(kubectl, namespace, "broken", "RemoteJobFailed")


def test_truto_spec_change_is_patched_in_place(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("contacts", integration), "-n", namespace)
    job_id = wait_ready(kubectl, namespace, "contacts")["status"]["remote"]["id"]
    gets_before = emulators.truto_admin.count("GetSyncJob", job_id)

    resources = [
        {"resource": "crm/contacts", "method": "list"},
        {"resource": "crm/notes", "method": "list", "dependsOn": "crm/contacts", "persist": True},
    ]
    kubectl.apply(
        truto_job("contacts", integration, provider={"resources": resources}), "-n", namespace
    )

    def patched() -> bool:
        obj = get_syncjob(kubectl, namespace, "contacts")
        return bool(
            obj["status"]["observedGeneration"] == 2
            and condition(obj, "Synced")["status"] == "True"
        )  # type: ignore[index]

    wait_until(patched, what="generation 2 reconciled")
    jobs = emulators.truto_jobs(integration)
    assert [j["id"] for j in jobs] == [job_id]  # updated in place, not replaced
    assert jobs[0]["resources"][1] == {
        "resource": "crm/notes",
        "method": "list",
        "depends_on": "crm/contacts",
        "persist": True,
    }
    assert emulators.truto_admin.count("UpdateSyncJob", job_id) == 1
    # One read (the observe) decided and shaped the PATCH; resyncs list instead of getting.
    assert emulators.truto_admin.count("GetSyncJob", job_id) - gets_before == 1
    assert emulators.truto_admin.count("CreateSyncJob") >= 1


def test_twinmaker_tag_changes_send_only_the_difference(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(
        twinmaker_job(
            "tagged", workspace, provider={"tags": {"keep": "1", "drop": "2", "edit": "3"}}
        ),
        "-n",
        namespace,
    )
    arn = wait_ready(kubectl, namespace, "tagged")["status"]["remote"]["id"]
    key = f"{workspace}/SITEWISE"
    before_tag = emulators.twinmaker_admin.calls()

    kubectl.apply(
        twinmaker_job(
            "tagged", workspace, provider={"tags": {"keep": "1", "edit": "4", "new": "5"}}
        ),
        "-n",
        namespace,
    )

    wait_until(
        lambda: (
            emulators.twinmaker.list_tags_for_resource(resourceARN=arn)["tags"]
            == {"keep": "1", "edit": "4", "new": "5", OWNER_TAG: f"{namespace}/tagged"}
        ),
        what="remote tags updated",
    )
    after = emulators.twinmaker_admin.calls()
    assert after.operations.get("TagResource", 0) - before_tag.operations.get("TagResource", 0) == 1
    assert (
        after.operations.get("UntagResource", 0) - before_tag.operations.get("UntagResource", 0)
        == 1
    )
    assert after.objects.get(key, {}).get("CreateSyncJob") == 1


@pytest.mark.parametrize("provider", ["twinmaker", "truto"])
def test_delete_policy_delete_removes_the_remote_job_before_the_object(
    kubectl: Cli, namespace: str, emulators: Emulators, provider: str
) -> None:
    workspace = emulators.new_workspace()
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    manifest = (
        twinmaker_job("doomed", workspace)
        if provider == "twinmaker"
        else truto_job("doomed", integration)
    )
    kubectl.apply(manifest, "-n", namespace)
    wait_ready(kubectl, namespace, "doomed")

    kubectl.run("delete", "syncjob", "doomed", "-n", namespace, "--timeout=60s")

    assert not kubectl.exists("syncjob", "doomed", "-n", namespace)
    if provider == "twinmaker":
        with pytest.raises(botocore.exceptions.ClientError) as missing:
            emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert emulators.twinmaker_admin.count("DeleteSyncJob", f"{workspace}/SITEWISE") == 1
    else:
        assert emulators.truto_jobs(integration) == []


def test_delete_policy_orphan_leaves_the_remote_job(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("kept", workspace, deletionPolicy="Orphan"), "-n", namespace)
    wait_ready(kubectl, namespace, "kept")

    kubectl.run("delete", "syncjob", "kept", "-n", namespace, "--timeout=60s")

    job = emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    assert job["status"]["state"] == "ACTIVE"
    assert emulators.twinmaker_admin.count("DeleteSyncJob", f"{workspace}/SITEWISE") == 0


def test_remote_job_deleted_out_of_band_is_recreated_under_delete_policy(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("drifty", integration), "-n", namespace)
    first_id = wait_ready(kubectl, namespace, "drifty")["status"]["remote"]["id"]

    emulators.truto.delete(f"/sync-job/{first_id}").raise_for_status()

    def recreated() -> str | None:
        jobs = emulators.truto_jobs(integration)
        return jobs[0]["id"] if len(jobs) == 1 and jobs[0]["id"] != first_id else None

    new_id = wait_until(recreated, timeout=30, what="job recreated by the resync")
    wait_until(
        lambda: get_syncjob(kubectl, namespace, "drifty")["status"]["remote"].get("id") == new_id,
        what="new id in status",
    )
    assert has_event(kubectl, namespace, "drifty", "RemoteJobMissing")


def test_remote_job_deleted_out_of_band_is_reported_under_orphan_policy(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("lost", workspace, deletionPolicy="Orphan"), "-n", namespace)
    wait_ready(kubectl, namespace, "lost")

    emulators.twinmaker_admin.remove_sync_job(workspace)

    obj = wait_condition(kubectl, namespace, "lost", "Ready", "False", "RemoteAbsent")
    assert obj["status"]["remote"]["state"] == "ABSENT"
    assert emulators.twinmaker_admin.count("CreateSyncJob", f"{workspace}/SITEWISE") == 1


def test_bad_token_is_terminal_without_a_retry_storm_and_recovers_when_the_secret_is_fixed(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret("wrong-token"), "-n", namespace)
    kubectl.apply(truto_job("denied", integration), "-n", namespace)

    obj = wait_condition(kubectl, namespace, "denied", "Terminal", "True", "Unauthorized")
    assert condition(obj, "Synced")["status"] == "False"  # type: ignore[index]
    assert has_event(kubectl, namespace, "denied", "TerminalError")
    # Every Truto operation counts: a retry storm may be reads as well as creates. This
    # module's operator re-checks terminal errors after 300 s, far beyond this window.
    calls_after_failure = _truto_calls(emulators, integration)
    time.sleep(6)  # three resync periods of the operator under test
    assert _truto_calls(emulators, integration) == calls_after_failure

    kubectl.apply(token_secret(), "-n", namespace)

    obj = wait_ready(kubectl, namespace, "denied")
    assert condition(obj, "Terminal") is None
    assert len(emulators.truto_jobs(integration)) == 1


def _truto_calls(emulators: Emulators, integration: str) -> int:
    """Every call on one integration: its lists and reads, and creates (not yet attributable
    to a job when refused)."""
    calls = emulators.truto_admin.calls()
    return sum(calls.objects.get(integration, {}).values()) + calls.operations.get(
        "CreateSyncJob", 0
    )


def test_access_denied_is_terminal_and_called_once(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    emulators.twinmaker_admin.inject_fault(
        "CreateSyncJob",
        status=403,
        code="AccessDeniedException",
        message="not authorized",
        next_n=100,
    )
    try:
        kubectl.apply(twinmaker_job("denied", workspace), "-n", namespace)
        obj = wait_condition(
            kubectl, namespace, "denied", "Terminal", "True", "AccessDeniedException"
        )
        calls = emulators.twinmaker_admin.calls().objects[f"{workspace}/SITEWISE"]
        time.sleep(6)  # three resync periods: not one more call of any kind on this job
        assert emulators.twinmaker_admin.calls().objects[f"{workspace}/SITEWISE"] == calls
        assert calls["CreateSyncJob"] == 1
        assert "not authorized" in condition(obj, "Synced")["message"]  # type: ignore[index]
    finally:
        emulators.twinmaker_admin.clear_faults()


def test_missing_secret_is_terminal_until_it_appears(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(truto_job("waiting", integration), "-n", namespace)

    wait_condition(kubectl, namespace, "waiting", "Terminal", "True", "SecretNotFound")
    assert emulators.truto_jobs(integration) == []

    kubectl.apply(token_secret(), "-n", namespace)

    wait_ready(kubectl, namespace, "waiting")


def test_retryable_errors_back_off_and_succeed(
    kubectl: Cli, namespace: str, emulators: Emulators, operator: OperatorProcess
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    emulators.truto_admin.inject_fault("CreateSyncJob", status=503, next_n=2)
    try:
        kubectl.apply(truto_job("flaky", integration), "-n", namespace)
        wait_ready(kubectl, namespace, "flaky")
    finally:
        emulators.truto_admin.clear_faults()

    assert len(emulators.truto_jobs(integration)) == 1
    assert 'syncjob_retries_total{code="ServerError503",provider="Truto"}' in operator.metrics()
    assert has_event(kubectl, namespace, "flaky", "RemoteCallFailed")


def test_immutable_field_edit_is_rejected_at_admission(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("fixed", workspace), "-n", namespace)

    rejected = kubectl.run(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        stdin=twinmaker_job(
            "fixed", workspace, provider={"syncRole": "arn:aws:iam::123456789012:role/Other"}
        ),
    )

    assert rejected.returncode != 0
    assert "spec.awsIoTTwinMaker.syncRole" in rejected.stderr
    assert "immutable" in rejected.stderr


def test_unreachable_provider_keeps_the_finalizer_and_says_why_until_it_returns(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("outage", workspace), "-n", namespace)
    wait_ready(kubectl, namespace, "outage")

    emulators.twinmaker_admin.outage(8)
    kubectl.run("delete", "syncjob", "outage", "-n", namespace, "--wait=false")

    obj = wait_condition(kubectl, namespace, "outage", "Synced", "False", "ReconcileError")
    assert obj["metadata"]["finalizers"] == ["syncjob.dev/finalizer"]
    assert "ConnectionError" in condition(obj, "Synced")["message"]  # type: ignore[index]
    assert has_event(kubectl, namespace, "outage", "RemoteCallFailed")
    wait_until(
        lambda: not kubectl.exists("syncjob", "outage", "-n", namespace),
        timeout=60,
        what="deleted after the outage",
    )
    with pytest.raises(botocore.exceptions.ClientError):
        emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)


def test_remote_job_failing_out_of_band_is_noticed_by_the_resync(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("later", workspace), "-n", namespace)
    wait_ready(kubectl, namespace, "later")

    applied = emulators.twinmaker_admin.sync_job_outcome(
        workspace, code="SYNC_PROCESSING_ERROR", message="asset model deleted"
    )

    assert applied == "existing"
    obj = wait_condition(kubectl, namespace, "later", "Ready", "False", "RemoteError")
    assert obj["status"]["remote"]["errorCode"] == "SYNC_PROCESSING_ERROR"
    assert has_event(kubectl, namespace, "later", "RemoteJobFailed")
    assert emulators.twinmaker_admin.count("CreateSyncJob", f"{workspace}/SITEWISE") == 1


def test_twinmaker_sync_progress_is_mirrored_and_resource_errors_are_reported(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("progress", workspace), "-n", namespace)
    wait_ready(kubectl, namespace, "progress")

    def progress(errors: int) -> dict[str, Any] | None:
        shown = get_syncjob(kubectl, namespace, "progress")["status"].get("syncProgress")
        return shown if shown and shown["ERROR"] == errors else None

    # The emulator's SITEWISE job has 7 resources (2 asset models, 5 assets), all in sync.
    shown = wait_until(lambda: progress(0), what="syncProgress read by the drift pass")
    assert (shown["IN_SYNC"], shown["complete"]) == (7, True)

    emulators.twinmaker_admin.sync_resource_errors(workspace, 2, message="asset model deleted")
    shown = wait_until(lambda: progress(2), what="resource errors mirrored")
    assert shown["IN_SYNC"] == 5
    assert [e["message"] for e in shown["errors"]] == ["asset model deleted"] * 2
    assert has_event(kubectl, namespace, "progress", "SyncResourceErrors")
    assert condition(get_syncjob(kubectl, namespace, "progress"), "Ready")["status"] == "True"  # type: ignore[index]

    emulators.twinmaker_admin.sync_resource_errors(workspace, 0)
    assert wait_until(lambda: progress(0), what="errors cleared")["IN_SYNC"] == 7


def test_truto_schedule_is_a_cron_trigger_kept_in_step_with_the_spec(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    schedule = {
        "cronExpression": "0 * * * *",
        "integratedAccountId": "acct-1",
        "args": {"since": "2026-01-01"},
    }
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(
        truto_job("nightly", integration, provider={"schedule": schedule}), "-n", namespace
    )
    job_id = wait_ready(kubectl, namespace, "nightly")["status"]["remote"]["id"]

    def triggers() -> list[dict[str, Any]]:
        page = emulators.truto.get("/sync-job-cron-trigger", params={"sync_job_id": job_id})
        result: list[dict[str, Any]] = page.json()["result"]
        return result

    created = triggers()  # added in the same pass as the job, before Ready was written
    assert [(t["cron_expression"], t["integrated_account_id"], t["args"]) for t in created] == [
        ("0 * * * *", "acct-1", {"since": "2026-01-01"})
    ]
    wait_until(
        lambda: (
            get_syncjob(kubectl, namespace, "nightly")["status"]["remote"].get("scheduleId")
            == created[0]["id"]
        ),
        what="scheduleId in status",
    )

    kubectl.apply(
        truto_job(
            "nightly",
            integration,
            provider={"schedule": {**schedule, "cronExpression": "30 2 * * *"}},
        ),
        "-n",
        namespace,
    )
    wait_until(
        lambda: [t["cron_expression"] for t in triggers()] == ["30 2 * * *"], what="trigger patched"
    )
    assert triggers()[0]["id"] == created[0]["id"]  # patched in place

    kubectl.apply(truto_job("nightly", integration), "-n", namespace)
    wait_until(lambda: triggers() == [], what="trigger removed with the schedule")
    wait_until(
        lambda: "scheduleId" not in get_syncjob(kubectl, namespace, "nightly")["status"]["remote"],
        what="scheduleId cleared",
    )
    assert [j["id"] for j in emulators.truto_jobs(integration)] == [job_id]


def test_truto_runs_on_demand_once_per_request_and_mirror_the_latest_run(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)

    def request(request_id: str) -> str:
        run = {"requestId": request_id, "integratedAccountId": "acct-1", "args": {"since": "x"}}
        return truto_job("ondemand", integration, provider={"run": run})

    def runs() -> list[dict[str, Any]]:
        page = emulators.truto.get("/sync-job-run", params={"sync_job_id": job_id})
        result: list[dict[str, Any]] = page.json()["result"]
        return result

    def last_run(status: str) -> dict[str, Any] | None:
        shown = get_syncjob(kubectl, namespace, "ondemand")["status"].get("lastRun") or {}
        return shown if shown.get("status") == status else None

    kubectl.apply(request("first"), "-n", namespace)
    job_id = wait_ready(kubectl, namespace, "ondemand")["status"]["remote"]["id"]
    assert has_event(kubectl, namespace, "ondemand", "RunStarted")
    done = wait_until(lambda: last_run("completed"), what="the run completed, mirrored")
    assert done["requestId"] == "first"
    assert len(runs()) == 1
    # The same request again (a re-apply, a resync, a restart): no second run.
    kubectl.apply(request("first"), "-n", namespace)
    time.sleep(4)  # two resync periods
    assert len(runs()) == 1

    emulators.truto_admin.run_outcome(job_id, "failed", error="token revoked at the CRM")
    kubectl.apply(request("second"), "-n", namespace)
    failed = wait_until(lambda: last_run("failed"), what="the second run failed, mirrored")
    assert (failed["requestId"], failed["error"]) == ("second", "token revoked at the CRM")
    assert has_event(kubectl, namespace, "ondemand", "RunFailed")
    assert len(runs()) == 2
    emulators.truto_admin.run_outcome(job_id, "completed")


def test_settled_syncjobs_cost_no_write_and_one_list_per_scope_per_period(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    """A bounded soak: three SyncJobs in two scopes, settled, over four resync periods."""
    integration, workspace = f"crm-{namespace}", emulators.new_workspace()
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("quiet-a", integration), "-n", namespace)
    other = {"resources": [{"resource": "crm/deals", "method": "list"}]}
    kubectl.apply(truto_job("quiet-b", integration, provider=other), "-n", namespace)
    kubectl.apply(twinmaker_job("quiet-twin", workspace), "-n", namespace)
    names = ("quiet-a", "quiet-b", "quiet-twin")
    for name in names:
        wait_ready(kubectl, namespace, name)
    wait_until(
        lambda: "syncProgress" in get_syncjob(kubectl, namespace, "quiet-twin")["status"],
        what="the TwinMaker job's first progress read",
    )
    time.sleep(2)  # one resync period: the first drift pass after creation

    def versions() -> list[str]:
        return [get_syncjob(kubectl, namespace, n)["metadata"]["resourceVersion"] for n in names]

    def events() -> int:
        return len(kubectl.json("get", "events", "-n", namespace)["items"])

    truto_before = emulators.truto_admin.calls().objects.get(integration, {})
    twin_before = emulators.twinmaker_admin.calls().objects.get(f"{workspace}/SITEWISE", {})
    lists_before = emulators.twinmaker_admin.count("ListSyncJobs")
    before = (versions(), events())
    time.sleep(8)  # four resync periods of the operator under test

    assert (versions(), events()) == before  # no status, annotation or Event write
    truto_calls = emulators.truto_admin.calls().objects.get(integration, {})
    twin_calls = emulators.twinmaker_admin.calls().objects.get(f"{workspace}/SITEWISE", {})
    new_truto = {op: n - truto_before.get(op, 0) for op, n in truto_calls.items()}
    new_twin = {op: n - twin_before.get(op, 0) for op, n in twin_calls.items()}
    # The integration's two jobs share one list per period (4 periods, one more at the edges).
    assert {op for op, n in new_truto.items() if n} == {"ListSyncJobs"}
    assert 3 <= new_truto["ListSyncJobs"] <= 5
    # Addressed to the TwinMaker job itself: only its resource progress, read once per
    # --sync-progress-seconds (2 s here: 4 periods, one more at the edges).
    assert {op for op, n in new_twin.items() if n} <= {"ListSyncResources"}
    assert new_twin.get("ListSyncResources", 0) <= 5
    assert emulators.twinmaker_admin.count("ListSyncJobs") > lists_before  # its workspace listed
