"""Ownership end to end: one remote job per SyncJob, never taken over, kept through lost status
and backup restores, drift corrected, terminal errors re-checked, namespaces deleted cleanly."""

from __future__ import annotations

import json
import time
from typing import Any

import botocore.exceptions
import pytest
import yaml

from syncjob_devtools.emulators.admin import EmulatorAdmin
from syncjob_operator.kube import SECRET_HOLD
from syncjob_operator.model import ADOPTION_POLICY_ANNOTATION, EXTERNAL_ID_ANNOTATION
from syncjob_operator.providers.twinmaker import OWNER_TAG
from tests.e2e.conftest import (
    ROLE,
    Emulators,
    get_syncjob,
    has_event,
    module_operator,
    token_secret,
    truto_job,
    twinmaker_job,
    wait_condition,
    wait_ready,
)
from tests.support.kube import Cli, condition, wait_until

TERMINAL_RECHECK_SECONDS = 2


# This module's operator re-checks terminal errors within seconds, not minutes.
operator = module_operator(
    autouse=True,
    resync_seconds=2.0,
    poll_seconds=0.3,
    extra_args=[f"--terminal-recheck-seconds={TERMINAL_RECHECK_SECONDS}"],
)


def _tags(emulators: Emulators, arn: str) -> dict[str, str]:
    tags: dict[str, str] = emulators.twinmaker.list_tags_for_resource(resourceARN=arn)["tags"]
    return tags


def test_a_second_syncjob_naming_a_taken_job_is_refused_and_never_acts_on_it(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("first", workspace), "-n", namespace)
    arn = wait_ready(kubectl, namespace, "first")["status"]["remote"]["id"]
    assert _tags(emulators, arn)[OWNER_TAG] == f"{namespace}/first"
    key = f"{workspace}/SITEWISE"
    other_role = ROLE.replace("TwinMakerSync", "Other")

    kubectl.apply(
        twinmaker_job("second", workspace, provider={"syncRole": other_role}), "-n", namespace
    )

    obj = wait_condition(kubectl, namespace, "second", "Ready", "False", "OwnedByAnother")
    message = condition(obj, "Ready")["message"]  # type: ignore[index]
    assert f"{namespace}/first" in message
    assert condition(obj, "Terminal")["reason"] == "OwnedByAnother"  # type: ignore[index]
    assert "remote" not in obj["status"]  # the other SyncJob's job is not mirrored as its own
    writes = ("TagResource", "UntagResource", "DeleteSyncJob")
    assert all(emulators.twinmaker_admin.count(op, key) == 0 for op in writes)
    # It never held a job: its create marker and finalizer go, so deleting it needs no
    # operator and deletes nothing.
    wait_until(
        lambda: (
            "finalizers"
            not in kubectl.json("get", "syncjob", "second", "-n", namespace)["metadata"]
        ),
        what="the refused SyncJob's finalizer to go",
    )

    kubectl.run("delete", "syncjob", "second", "-n", namespace, "--timeout=60s")

    assert emulators.twinmaker_admin.count("DeleteSyncJob", key) == 0
    job = emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    assert (job["arn"], job["syncRole"]) == (arn, ROLE)
    assert condition(get_syncjob(kubectl, namespace, "first"), "Ready")["status"] == "True"  # type: ignore[index]


def test_orphan_releases_the_job_and_adopting_it_is_an_explicit_choice(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(twinmaker_job("leaving", workspace, deletionPolicy="Orphan"), "-n", namespace)
    arn = wait_ready(kubectl, namespace, "leaving")["status"]["remote"]["id"]
    kubectl.run("delete", "syncjob", "leaving", "-n", namespace, "--timeout=60s")
    assert OWNER_TAG not in _tags(emulators, arn)  # released: nobody owns it now

    kubectl.apply(twinmaker_job("newcomer", workspace), "-n", namespace)
    obj = wait_condition(kubectl, namespace, "newcomer", "Ready", "False", "RemoteJobNotOwned")
    assert ADOPTION_POLICY_ANNOTATION in condition(obj, "Ready")["message"]  # type: ignore[index]
    assert OWNER_TAG not in _tags(emulators, arn)

    kubectl.run(
        "annotate", "syncjob", "newcomer", "-n", namespace, f"{ADOPTION_POLICY_ANNOTATION}=adopt"
    )

    obj = wait_ready(kubectl, namespace, "newcomer")
    assert obj["status"]["remote"]["id"] == arn
    assert obj["metadata"]["annotations"][EXTERNAL_ID_ANNOTATION] == arn
    assert _tags(emulators, arn)[OWNER_TAG] == f"{namespace}/newcomer"
    assert has_event(kubectl, namespace, "newcomer", "AdoptedRemoteJob")
    jobs = emulators.twinmaker.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"]
    assert [job["arn"] for job in jobs] == [arn]  # adopted, never a second job


def test_adoption_refuses_a_job_whose_role_differs(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    other_role = ROLE.replace("TwinMakerSync", "Other")
    emulators.twinmaker.create_sync_job(
        workspaceId=workspace, syncSource="SITEWISE", syncRole=other_role
    )
    manifest = yaml.safe_load(twinmaker_job("careful", workspace))
    manifest["metadata"]["annotations"] = {ADOPTION_POLICY_ANNOTATION: "adopt"}

    kubectl.apply(yaml.safe_dump(manifest), "-n", namespace)

    obj = wait_condition(kubectl, namespace, "careful", "Ready", "False", "AdoptionConflict")
    assert "syncRole" in condition(obj, "Ready")["message"]  # type: ignore[index]
    kubectl.run("delete", "syncjob", "careful", "-n", namespace, "--timeout=60s")
    job = emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    assert job["syncRole"] == other_role  # never adopted, so never deleted


def _export(kubectl: Cli, namespace: str, name: str) -> str:
    """The object as a backup tool stores it: metadata and spec, no status, no server fields."""
    obj = get_syncjob(kubectl, namespace, name)
    meta = obj["metadata"]
    kept = {"name": meta["name"], "annotations": meta.get("annotations", {})}
    return json.dumps(
        {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": kept,
            "spec": obj["spec"],
        }
    )


def test_identity_survives_lost_status_and_a_backup_restore(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("precious", integration), "-n", namespace)
    remote_id = wait_ready(kubectl, namespace, "precious")["status"]["remote"]["id"]
    creates = emulators.truto_admin.count("CreateSyncJob")

    # Status wiped (as if lost): the annotation still names the job.
    kubectl.run(
        "patch",
        "syncjob",
        "precious",
        "-n",
        namespace,
        "--subresource=status",
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/status"}]',
    )
    wait_until(
        lambda: (
            get_syncjob(kubectl, namespace, "precious")
            .get("status", {})
            .get("remote", {})
            .get("id")
            == remote_id
        ),
        what="status rebuilt with the same id",
    )

    # Backup, then the cluster loses the object (Orphan keeps the remote job), then restore.
    backup = _export(kubectl, namespace, "precious")
    kubectl.run(
        "patch",
        "syncjob",
        "precious",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"deletionPolicy": "Orphan"}}',
    )
    wait_until(
        lambda: (
            get_syncjob(kubectl, namespace, "precious")["status"].get("observedGeneration") == 2
        ),
        what="Orphan observed",
    )
    kubectl.run("delete", "syncjob", "precious", "-n", namespace, "--timeout=60s")
    kubectl.apply(backup, "-n", namespace)

    obj = wait_ready(kubectl, namespace, "precious")
    assert obj["status"]["remote"]["id"] == remote_id
    assert [job["id"] for job in emulators.truto_jobs(integration)] == [remote_id]
    assert emulators.truto_admin.count("CreateSyncJob") == creates


def test_a_copied_manifest_does_not_take_over_the_original_job(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("original", integration), "-n", namespace)
    remote_id = wait_ready(kubectl, namespace, "original")["status"]["remote"]["id"]
    copy = json.loads(_export(kubectl, namespace, "original"))
    copy["metadata"]["name"] = "copy"

    kubectl.apply(json.dumps(copy), "-n", namespace)

    obj = wait_condition(kubectl, namespace, "copy", "Ready", "False", "OwnedByAnother")
    assert f"{namespace}/original" in condition(obj, "Ready")["message"]  # type: ignore[index]
    kubectl.run("delete", "syncjob", "copy", "-n", namespace, "--timeout=60s")
    assert [job["id"] for job in emulators.truto_jobs(integration)] == [remote_id]
    assert emulators.truto_admin.count("DeleteSyncJob", remote_id) == 0


def test_out_of_band_tag_edits_are_corrected_by_the_resync(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(
        twinmaker_job("tidy", workspace, provider={"tags": {"team": "a"}}), "-n", namespace
    )
    arn = wait_ready(kubectl, namespace, "tidy")["status"]["remote"]["id"]
    wanted = {"team": "a", OWNER_TAG: f"{namespace}/tidy"}

    emulators.twinmaker.tag_resource(resourceARN=arn, tags={"team": "b", "extra": "x"})

    wait_until(lambda: _tags(emulators, arn) == wanted, timeout=30, what="tags corrected")
    assert has_event(kubectl, namespace, "tidy", "DriftCorrected")


def test_out_of_band_content_edits_are_corrected_by_the_resync(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("steady", integration), "-n", namespace)
    remote_id = wait_ready(kubectl, namespace, "steady")["status"]["remote"]["id"]
    wanted = emulators.truto.get(f"/sync-job/{remote_id}").json()["resources"]

    emulators.truto.patch(
        f"/sync-job/{remote_id}", json={"resources": [{"resource": "crm/deals", "method": "list"}]}
    ).raise_for_status()

    wait_until(
        lambda: emulators.truto.get(f"/sync-job/{remote_id}").json()["resources"] == wanted,
        timeout=30,
        what="content corrected",
    )
    assert has_event(kubectl, namespace, "steady", "DriftCorrected")


def test_a_terminal_error_with_ambient_credentials_heals_without_an_edit(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    admin = emulators.twinmaker_admin
    admin.inject_fault("*", status=403, code="AccessDeniedException", message="no policy yet")
    try:
        kubectl.apply(twinmaker_job("patient", workspace), "-n", namespace)
        obj = wait_condition(
            kubectl, namespace, "patient", "Terminal", "True", "AccessDeniedException"
        )
        assert "will check again at" in condition(obj, "Synced")["message"]  # type: ignore[index]
        assert obj["status"]["nextCheckTime"].endswith("Z")
        # Re-checks back off (2 s, 4 s, 8 s ...): a handful of calls, not one per resync.
        calls = _calls_on(admin, workspace)
        time.sleep(6)
        assert _calls_on(admin, workspace) - calls <= 3
        checks = get_syncjob(kubectl, namespace, "patient")["status"]["terminalChecks"]
        assert checks >= 2
    finally:
        admin.clear_faults()  # the IAM policy is fixed outside Kubernetes

    obj = wait_ready(kubectl, namespace, "patient")
    assert condition(obj, "Terminal") is None
    assert "nextCheckTime" not in obj["status"]


def _calls_on(admin: EmulatorAdmin, workspace: str) -> int:
    """Calls of any operation on one workspace and its job."""
    objects = admin.calls().objects
    return sum(sum(objects.get(key, {}).values()) for key in (workspace, f"{workspace}/SITEWISE"))


def test_deleting_a_namespace_deletes_the_remote_jobs_of_both_providers(
    kubectl: Cli, emulators: Emulators
) -> None:
    namespace = f"doomed-{int(time.time() * 1000) % 10**8}"
    kubectl.run("create", "namespace", namespace)
    workspace = emulators.new_workspace()
    integration = f"crm-{namespace}"
    keys = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "aws-keys"},
        "stringData": {  # the pair of examples/twinmaker.yaml, known to the emulator
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00",
            "AWS_SECRET_ACCESS_KEY": "example-secret-access-key",
        },
    }
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(yaml.safe_dump(keys), "-n", namespace)
    for name in ("a", "b"):  # identical content: two jobs all the same
        kubectl.apply(truto_job(name, integration), "-n", namespace)
    kubectl.apply(
        twinmaker_job("twin", workspace, provider={"credentialsSecretRef": {"name": "aws-keys"}}),
        "-n",
        namespace,
    )
    kubectl.run(
        "wait", "--for=condition=Ready", "syncjob", "--all", "-n", namespace, "--timeout=60s"
    )
    for secret in ("truto-token", "aws-keys"):
        obj: dict[str, Any] = kubectl.json("get", "secret", secret, "-n", namespace)
        assert SECRET_HOLD in obj["metadata"]["finalizers"]
    assert len(emulators.truto_jobs(integration)) == 2

    kubectl.run("delete", "namespace", namespace, "--wait=false")

    wait_until(
        lambda: not kubectl.exists("namespace", namespace),
        timeout=120,
        interval=1,
        what="namespace deleted",
    )
    assert emulators.truto_jobs(integration) == []
    with pytest.raises(botocore.exceptions.ClientError):
        emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)


def test_a_secret_no_syncjob_uses_is_released(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    integration = f"crm-{namespace}"
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("user", integration), "-n", namespace)
    wait_ready(kubectl, namespace, "user")
    protected = kubectl.json("get", "secret", "truto-token", "-n", namespace)
    assert SECRET_HOLD in protected["metadata"]["finalizers"]

    kubectl.run("delete", "syncjob", "user", "-n", namespace, "--timeout=60s")

    secret = kubectl.json("get", "secret", "truto-token", "-n", namespace)
    assert SECRET_HOLD not in (secret["metadata"].get("finalizers") or [])
    assert emulators.truto_jobs(integration) == []
