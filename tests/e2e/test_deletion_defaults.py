"""Deletion with the operator's default timers (no --resync-seconds, --poll-seconds or
--terminal-recheck-seconds): a namespace of Ready SyncJobs is gone within 2 minutes with its
remote jobs; a deletion blocked by revoked credentials says so within 30 s and names
`deletionPolicy: Orphan`; switching to Orphan, or restoring the credentials, lets it finish
within a minute, not after the 5-minute terminal re-check."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import yaml

from tests.e2e.conftest import (
    Emulators,
    get_syncjob,
    module_operator,
    token_secret,
    truto_job,
    twinmaker_job,
)
from tests.support.kube import Cli, condition, wait_until

# Requirements of issue 26, not performance figures.
NAMESPACE_GONE_SECONDS = 120  # a namespace of healthy SyncJobs, defaults
BLOCKED_SAID_SECONDS = 30  # a blocked deletion says so, condition and Warning Event
WAY_OUT_SECONDS = 60  # Orphan or restored credentials: well under the 300 s terminal re-check
NAMES = ("crm", "twin")
ORPHAN = '{"spec": {"deletionPolicy": "Orphan"}}'


# The operator exactly as installed: every timer at its default.
operator = module_operator(autouse=True, own_defaults=True, resync_seconds=None, poll_seconds=None)


@dataclass(frozen=True)
class Tenant:
    """A namespace with a Truto and a TwinMaker SyncJob, Ready, each with credentials of its
    own in a Secret: a Truto token and an AWS key pair the emulators accept until revoked."""

    namespace: str
    integration: str
    workspace: str
    token: str
    access_key: str
    secret_key: str

    def revoke(self, emulators: Emulators) -> None:
        emulators.truto_admin.revoke_token(self.token)
        emulators.twinmaker_admin.remove_credentials(self.access_key)

    def restore(self, emulators: Emulators) -> None:
        emulators.truto_admin.add_token(self.token)
        emulators.twinmaker_admin.add_credentials(self.access_key, self.secret_key)

    def remote_jobs(self, emulators: Emulators) -> int:
        """How many of its two remote jobs (Truto, TwinMaker) exist."""
        twinmaker = emulators.twinmaker.list_sync_jobs(workspaceId=self.workspace)
        return len(emulators.truto_jobs(self.integration)) + len(twinmaker["syncJobSummaries"])


def _tenant(kubectl: Cli, emulators: Emulators) -> Tenant:
    suffix = uuid.uuid4().hex[:8]
    tenant = Tenant(
        namespace=f"defaults-{suffix}",
        integration=f"crm-defaults-{suffix}",
        workspace=emulators.new_workspace(),
        token=f"token-{suffix}",
        access_key=f"AKIADEFAULTS{suffix.upper()}",
        secret_key=f"secret-{suffix}",
    )
    tenant.restore(emulators)  # accepted from now on
    namespace = tenant.namespace
    kubectl.run("create", "namespace", namespace)
    keys = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "aws-keys"},
        "stringData": {
            "AWS_ACCESS_KEY_ID": tenant.access_key,
            "AWS_SECRET_ACCESS_KEY": tenant.secret_key,
        },
    }
    kubectl.apply(token_secret(tenant.token), "-n", namespace)
    kubectl.apply(yaml.safe_dump(keys), "-n", namespace)
    kubectl.apply(truto_job("crm", tenant.integration), "-n", namespace)
    credentials = {"credentialsSecretRef": {"name": "aws-keys"}}
    kubectl.apply(twinmaker_job("twin", tenant.workspace, provider=credentials), "-n", namespace)
    kubectl.run(
        "wait", "--for=condition=Ready", "syncjob", "--all", "-n", namespace, "--timeout=60s"
    )
    assert tenant.remote_jobs(emulators) == 2
    return tenant


def _blocked_message(kubectl: Cli, namespace: str, name: str) -> str | None:
    """The Synced message of a SyncJob whose deletion is blocked, once it says so."""
    obj = get_syncjob(kubectl, namespace, name)
    synced = condition(obj, "Synced") or {}
    message = str(synced.get("message", ""))
    if obj["metadata"].get("deletionTimestamp") and "deletion blocked" in message:
        return message
    return None


def _blocked_events(kubectl: Cli, namespace: str, name: str) -> list[str]:
    selector = f"involvedObject.name={name},type=Warning,reason=DeletionBlocked"
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", selector)
    return [str(event["message"]) for event in events["items"]]


def _wait_blocked(kubectl: Cli, namespace: str, *, events: bool) -> float:
    """Seconds until every SyncJob's Synced condition (and, with `events`, a Warning Event)
    says its deletion is blocked and names the way out."""
    started = time.monotonic()
    for name in NAMES:
        message = wait_until(
            lambda name=name: _blocked_message(kubectl, namespace, name),  # type: ignore[misc]
            timeout=BLOCKED_SAID_SECONDS,
            interval=0.5,
            what=f"{name}: Synced says the deletion is blocked",
        )
        assert "set spec.deletionPolicy: Orphan" in message
        if events:
            posted = wait_until(
                lambda name=name: _blocked_events(kubectl, namespace, name),  # type: ignore[misc]
                timeout=max(1.0, BLOCKED_SAID_SECONDS - (time.monotonic() - started)),
                interval=0.5,
                what=f"{name}: Warning Event DeletionBlocked",
            )
            assert any("set spec.deletionPolicy: Orphan" in m for m in posted), posted
    return time.monotonic() - started


def _wait_namespace_gone(kubectl: Cli, namespace: str, timeout: float) -> float:
    started = time.monotonic()
    wait_until(
        lambda: not kubectl.exists("namespace", namespace),
        timeout=timeout,
        interval=0.5,
        what=f"namespace {namespace} deleted",
    )
    return time.monotonic() - started


def _blocked_namespace(kubectl: Cli, emulators: Emulators) -> Tenant:
    """A tenant whose credentials were revoked before its namespace was deleted, once its
    SyncJobs say their deletion is blocked. A Terminating namespace takes no new objects, Events
    included: the conditions say it."""
    tenant = _tenant(kubectl, emulators)
    tenant.revoke(emulators)
    kubectl.run("delete", "namespace", tenant.namespace, "--wait=false")
    said = _wait_blocked(kubectl, tenant.namespace, events=False)
    print(f"\nblocked namespace deletion reported (condition) in {said:.1f} s")
    return tenant


def _orphan_all(kubectl: Cli, namespace: str) -> None:
    for name in NAMES:
        kubectl.run("patch", "syncjob", name, "-n", namespace, "--type=merge", "-p", ORPHAN)


def test_a_namespace_is_gone_within_two_minutes_with_its_remote_jobs(
    kubectl: Cli, emulators: Emulators
) -> None:
    tenant = _tenant(kubectl, emulators)

    kubectl.run("delete", "namespace", tenant.namespace, "--wait=false")

    took = _wait_namespace_gone(kubectl, tenant.namespace, NAMESPACE_GONE_SECONDS)
    print(f"\nnamespace deleted in {took:.1f} s")
    assert tenant.remote_jobs(emulators) == 0


def test_revoked_credentials_block_a_deletion_until_it_is_switched_to_orphan(
    kubectl: Cli, emulators: Emulators
) -> None:
    tenant = _tenant(kubectl, emulators)
    namespace = tenant.namespace
    tenant.revoke(emulators)

    kubectl.run("delete", "syncjob", "--all", "-n", namespace, "--wait=false")

    said = _wait_blocked(kubectl, namespace, events=True)
    print(f"\nblocked deletion reported (condition and Event) in {said:.1f} s")
    started = time.monotonic()
    _orphan_all(kubectl, namespace)
    wait_until(
        lambda: not kubectl.json("get", "syncjob", "-n", namespace)["items"],
        timeout=WAY_OUT_SECONDS,
        interval=0.5,
        what="SyncJobs deleted after the switch to Orphan",
    )
    print(f"SyncJobs deleted {time.monotonic() - started:.1f} s after the switch to Orphan")
    assert tenant.remote_jobs(emulators) == 2  # orphaned: both stay
    kubectl.run("delete", "namespace", namespace, "--wait=false")


def test_revoked_credentials_block_a_namespace_deletion_until_it_is_switched_to_orphan(
    kubectl: Cli, emulators: Emulators
) -> None:
    tenant = _blocked_namespace(kubectl, emulators)

    _orphan_all(kubectl, tenant.namespace)

    took = _wait_namespace_gone(kubectl, tenant.namespace, WAY_OUT_SECONDS)
    print(f"namespace deleted {took:.1f} s after the switch to Orphan")
    assert tenant.remote_jobs(emulators) == 2  # orphaned: both stay


def test_restored_credentials_let_a_blocked_namespace_deletion_delete_the_remote_jobs(
    kubectl: Cli, emulators: Emulators
) -> None:
    tenant = _blocked_namespace(kubectl, emulators)

    tenant.restore(emulators)

    took = _wait_namespace_gone(kubectl, tenant.namespace, WAY_OUT_SECONDS)
    print(f"namespace deleted {took:.1f} s after the credentials were restored")
    assert tenant.remote_jobs(emulators) == 0
