"""Cross-account TwinMaker SyncJobs: spec.awsIoTTwinMaker.assumeRole, through the real boto3
STS client against the emulator's AssumeRole (which enforces the role's external id), and the
TwinMaker calls signed with the session credentials it issued (the emulator verifies SigV4)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import (
    OPERATOR_ACCESS_KEY,
    PARTNER_EXTERNAL_ID,
    PARTNER_ROLE,
    Emulators,
    twinmaker_job,
    wait_condition,
    wait_ready,
)
from tests.support.kube import Cli, condition

pytestmark = pytest.mark.usefixtures("operator")


def test_syncjobs_assuming_one_role_share_one_sts_call(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    before = emulators.twinmaker_admin.count("AssumeRole")
    role = {"roleArn": PARTNER_ROLE, "externalId": PARTNER_EXTERNAL_ID}
    names = ("partner-a", "partner-b", "partner-c")
    workspaces = []
    for name in names:
        workspace = emulators.new_workspace()
        workspaces.append(workspace)
        kubectl.apply(
            twinmaker_job(name, workspace, provider={"assumeRole": role}), "-n", namespace
        )
    for name in names:
        wait_ready(kubectl, namespace, name)
    # One role, one source identity: one AssumeRole for every call of all three, until the
    # credentials near their expiry (an hour).
    assert emulators.twinmaker_admin.count("AssumeRole") - before == 1
    # Every TwinMaker call on their jobs was signed (and verified) with the role's session
    # credentials, none with the operator's own key.
    admin = emulators.twinmaker_admin
    sessions = {
        c.access_key_id
        for c in admin.credentials()
        if c.kind == "session" and c.role_arn == PARTNER_ROLE
    }
    object_signers = admin.calls().object_signers
    for workspace in workspaces:
        signers = set(object_signers.get(f"{workspace}/SITEWISE", {}))
        assert signers, f"no signed call on {workspace}'s job"
        assert signers <= sessions, f"{workspace}'s job: signed by {signers}, not {sessions}"
        assert OPERATOR_ACCESS_KEY not in signers


def test_a_wrong_external_id_is_terminal_and_names_the_role(
    kubectl: Cli, namespace: str, emulators: Emulators
) -> None:
    workspace = emulators.new_workspace()
    role = {"roleArn": PARTNER_ROLE, "externalId": "not-the-id"}
    kubectl.apply(
        twinmaker_job("denied-role", workspace, provider={"assumeRole": role}), "-n", namespace
    )
    obj = wait_condition(kubectl, namespace, "denied-role", "Terminal", "True", "AccessDenied")
    assert PARTNER_ROLE in condition(obj, "Synced")["message"]  # type: ignore[index]
    assert emulators.twinmaker.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"] == []


def test_a_malformed_role_arn_is_rejected_at_admission(kubectl: Cli, namespace: str) -> None:
    manifest = twinmaker_job("bad-role", "ws-any", provider={"assumeRole": {"roleArn": "admin"}})
    rejected = kubectl.run("apply", "-n", namespace, "-f", "-", check=False, stdin=manifest)
    assert rejected.returncode != 0
    assert "spec.awsIoTTwinMaker.assumeRole.roleArn" in rejected.stderr
