"""Management policies end to end: ObserveOnly imports an existing remote job and never writes
to it; the pause annotation stops every remote call, deletion included, until it goes."""

from __future__ import annotations

import time

import pytest
import yaml

from syncjob_operator.model import EXTERNAL_ID_ANNOTATION, PAUSED_ANNOTATION
from syncjob_operator.providers.twinmaker import OWNER_TAG
from tests.e2e.conftest import (
    ROLE,
    Emulators,
    get_syncjob,
    token_secret,
    truto_job,
    twinmaker_job,
    wait_condition,
    wait_ready,
)
from tests.support.kube import Cli, condition, wait_until

pytestmark = pytest.mark.usefixtures("operator")


def _observe_only(manifest: str, annotations: dict[str, str] | None = None) -> str:
    obj = yaml.safe_load(manifest)
    obj["spec"]["managementPolicy"] = "ObserveOnly"
    if annotations:
        obj["metadata"]["annotations"] = annotations
    return yaml.safe_dump(obj)


def _writes(emulators: Emulators, key: str) -> int:
    calls = emulators.twinmaker_admin.calls().objects.get(key, {})
    return sum(n for op, n in calls.items() if not op.startswith(("Get", "List")))


def test_observe_only_imports_a_twinmaker_job_and_never_writes_to_it(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    emulators.twinmaker.create_sync_job(
        workspaceId=workspace, syncSource="SITEWISE", syncRole=ROLE, tags={"made": "by-hand"}
    )
    key = f"{workspace}/SITEWISE"
    writes = _writes(emulators, key)
    # The spec asks for other tags: ObserveOnly reports the difference and leaves it.
    kubectl.apply(
        _observe_only(twinmaker_job("imported", workspace, provider={"tags": {"team": "a"}})),
        "-n",
        namespace,
    )

    obj = wait_ready(kubectl, namespace, "imported")
    synced = condition(obj, "Synced")
    assert synced is not None
    assert synced["reason"] == "Observing"
    assert "differs from the spec" in synced["message"]
    assert obj["status"]["remote"]["upToDate"] is False
    assert "finalizers" not in obj["metadata"]  # it never deletes: nothing to wait for

    kubectl.run("delete", "syncjob", "imported", "-n", namespace, "--timeout=30s")
    job = emulators.twinmaker.get_sync_job(workspaceId=workspace, syncSource="SITEWISE")
    tags = emulators.twinmaker.list_tags_for_resource(resourceARN=job["arn"])["tags"]
    assert tags == {"made": "by-hand"}  # no owner tag, no spec tags
    assert _writes(emulators, key) == writes


def test_observe_only_beside_the_owner_acts_on_nothing(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    """Observing claims nothing: the owner keeps its job, and deleting the observer leaves it."""
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("owner", workspace), "-n", namespace)
    wait_ready(kubectl, namespace, "owner")
    kubectl.apply(_observe_only(twinmaker_job("watcher", workspace)), "-n", namespace)

    watcher = wait_ready(kubectl, namespace, "watcher")

    assert condition(watcher, "Synced")["reason"] == "Observing"  # type: ignore[index]
    kubectl.run("delete", "syncjob", "watcher", "-n", namespace, "--timeout=30s")
    owner = get_syncjob(kubectl, namespace, "owner")
    assert condition(owner, "Ready")["status"] == "True"  # type: ignore[index]
    arn = owner["status"]["remote"]["id"]
    tags = emulators.twinmaker.list_tags_for_resource(resourceARN=arn)["tags"]
    assert tags[OWNER_TAG] == f"{namespace}/owner"


def test_observe_only_truto_job_is_found_by_its_id(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    made = emulators.truto.post(
        "/sync-job",
        json={
            "integration_name": integration,
            "args_schema": {"type": "object"},
            "resources": [{"resource": "crm/contacts", "method": "list"}],
        },
    )
    made.raise_for_status()
    job_id = made.json()["id"]

    kubectl.apply(_observe_only(truto_job("unnamed", integration)), "-n", namespace)
    obj = wait_condition(kubectl, namespace, "unnamed", "Terminal", "True", "ExternalIdRequired")
    assert "syncjob.dev/external-id" in condition(obj, "Synced")["message"]  # type: ignore[index]

    kubectl.apply(
        _observe_only(truto_job("named", integration), {EXTERNAL_ID_ANNOTATION: job_id}),
        "-n",
        namespace,
    )
    named = wait_ready(kubectl, namespace, "named")
    assert named["status"]["remote"]["id"] == job_id
    kubectl.run("delete", "syncjob", "named", "unnamed", "-n", namespace, "--timeout=30s")
    assert [job["id"] for job in emulators.truto_jobs(integration)] == [job_id]


def test_observe_only_with_deletion_policy_delete_is_rejected_at_admission(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    manifest = _observe_only(twinmaker_job("both", "ws-any", deletionPolicy="Delete"))
    rejected = kubectl.run("apply", "-n", namespace, "-f", "-", check=False, stdin=manifest)
    assert rejected.returncode != 0
    assert "spec.deletionPolicy" in rejected.stderr


def test_pause_stops_remote_calls_until_the_annotation_goes(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    key = f"{workspace}/SITEWISE"
    kubectl.apply(twinmaker_job("held", workspace), "-n", namespace)
    wait_ready(kubectl, namespace, "held")
    kubectl.run("annotate", "syncjob", "held", "-n", namespace, f"{PAUSED_ANNOTATION}=true")
    wait_condition(kubectl, namespace, "held", "Synced", "False", "ReconcilePaused")
    calls = emulators.twinmaker_admin.calls().objects.get(key, {})

    # A spec change and a deletion while paused: nothing reaches TwinMaker.
    kubectl.apply(
        twinmaker_job("held", workspace, provider={"tags": {"team": "b"}}), "-n", namespace
    )
    kubectl.run("delete", "syncjob", "held", "-n", namespace, "--wait=false")
    time.sleep(6)  # three resync periods of this module's operator
    assert emulators.twinmaker_admin.calls().objects.get(key, {}) == calls
    assert kubectl.exists("syncjob", "held", "-n", namespace)  # the finalizer holds it

    kubectl.run("annotate", "syncjob", "held", "-n", namespace, f"{PAUSED_ANNOTATION}-")
    wait_until(
        lambda: not kubectl.exists("syncjob", "held", "-n", namespace),
        timeout=60,
        what="deleted once resumed",
    )
    assert emulators.twinmaker.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"] == []


def test_new_fields_are_explained_and_shown_wide(kubectl: Cli, namespace: str) -> None:
    for field in (
        "spec.managementPolicy",
        "spec.truto.run",
        "spec.awsIoTTwinMaker.assumeRole",
        "status.syncProgress",
        "status.lastRun",
    ):
        explained = kubectl.run("explain", f"syncjobs.{field}").stdout
        assert "DESCRIPTION" in explained, field
    assert "Example" in kubectl.run("explain", "syncjobs.spec.truto.run").stdout
    kubectl.apply(truto_job("shown", f"crm-{namespace}"), "-n", namespace)
    header = kubectl.run("get", "syncjobs", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    for column in ("REMOTE-ID", "IN-SYNC", "RESOURCE-ERRORS", "LAST-RUN", "POLICY"):
        assert column in header, header
