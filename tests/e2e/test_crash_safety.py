"""The operator killed at the worst moment, then restarted: exactly one remote job results, and
a restart re-creates, re-patches and re-posts nothing for objects that have not changed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest

from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from syncjob_operator.model import CREATE_PENDING_ANNOTATION, EXTERNAL_ID_ANNOTATION
from tests.e2e.conftest import Emulators, start_operator, token_secret, truto_job, twinmaker_job
from tests.support.kube import Cli, wait_until

CREATE_LATENCY_MS = 3000


@pytest.fixture
def operator_factory(
    crd: None, control_plane: ControlPlane, emulators: Emulators, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    """Operators this test starts; all are stopped at the end."""
    started: list[OperatorProcess] = []
    yield started
    for process in started:
        process.stop()


def _start(
    started: list[OperatorProcess],
    control_plane: ControlPlane,
    emulators: Emulators,
    log_dir: Path,
    resync_seconds: float = 60.0,
) -> OperatorProcess:
    process = start_operator(
        control_plane, emulators, log_dir, poll_seconds=0.3, resync_seconds=resync_seconds
    )
    started.append(process)
    return process


@pytest.mark.parametrize("provider", ["truto", "twinmaker"])
def test_sigkill_between_remote_create_and_status_write_leaves_one_job(
    kubectl: Cli,
    namespace: str,
    emulators: Emulators,
    control_plane: ControlPlane,
    operator_factory: list[OperatorProcess],
    tmp_path: Path,
    provider: str,
) -> None:
    admin = emulators.truto_admin if provider == "truto" else emulators.twinmaker_admin
    integration, workspace = f"crm-{namespace}", emulators.new_workspace()
    kubectl.apply(token_secret(), "-n", namespace)
    operator = _start(operator_factory, control_plane, emulators, tmp_path)
    creates_before = admin.count("CreateSyncJob")
    # The emulator performs the create, then holds the answer for 3 s: the remote job exists,
    # and the operator, killed meanwhile, never learns its id.
    admin.inject_fault("CreateSyncJob", response_delay_ms=CREATE_LATENCY_MS, next_n=1)
    manifest = (
        truto_job("crashy", integration)
        if provider == "truto"
        else twinmaker_job("crashy", workspace)
    )
    kubectl.apply(manifest, "-n", namespace)

    wait_until(lambda: admin.count("CreateSyncJob") == creates_before + 1, what="create in flight")
    meta = kubectl.json("get", "syncjob", "crashy", "-n", namespace)["metadata"]
    assert CREATE_PENDING_ANNOTATION in meta["annotations"]  # persisted before the call
    operator.kill()
    time.sleep(CREATE_LATENCY_MS / 1000 + 1)
    if provider == "truto":
        assert len(emulators.truto_jobs(integration)) == 1  # created after the operator died
    else:
        assert emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)["arn"]

    _start(operator_factory, control_plane, emulators, tmp_path)
    kubectl.run("wait", "--for=condition=Ready", "syncjob/crashy", "-n", namespace, "--timeout=60s")

    obj = kubectl.json("get", "syncjob", "crashy", "-n", namespace)
    status = obj["status"]
    assert CREATE_PENDING_ANNOTATION not in obj["metadata"]["annotations"]
    assert obj["metadata"]["annotations"][EXTERNAL_ID_ANNOTATION] == status["remote"]["id"]
    assert admin.count("CreateSyncJob") == creates_before + 1  # recovered, not created again
    if provider == "truto":
        jobs = emulators.truto_jobs(integration)
        assert [job["id"] for job in jobs] == [status["remote"]["id"]]


def test_restart_changes_nothing_remote_for_unchanged_objects(
    kubectl: Cli,
    namespace: str,
    emulators: Emulators,
    control_plane: ControlPlane,
    operator_factory: list[OperatorProcess],
    tmp_path: Path,
) -> None:
    workspace = emulators.new_workspace()
    kubectl.apply(token_secret(), "-n", namespace)
    kubectl.apply(truto_job("steady-truto", f"crm-{namespace}"), "-n", namespace)
    kubectl.apply(
        twinmaker_job("steady-twin", workspace, provider={"tags": {"a": "1"}}), "-n", namespace
    )
    operator = _start(operator_factory, control_plane, emulators, tmp_path)
    kubectl.run(
        "wait", "--for=condition=Ready", "syncjob", "--all", "-n", namespace, "--timeout=60s"
    )
    truto_id = kubectl.json("get", "syncjob", "steady-truto", "-n", namespace)["status"]["remote"][
        "id"
    ]
    objects = (
        (emulators.truto_admin, truto_id),
        (emulators.twinmaker_admin, f"{workspace}/SITEWISE"),
    )
    writes = ("CreateSyncJob", "UpdateSyncJob", "DeleteSyncJob", "TagResource", "UntagResource")

    def remote_writes() -> list[int]:
        return [admin.count(op, key) for admin, key in objects for op in writes]

    before = remote_writes()
    assert before.count(1) == 2  # one create each, nothing else

    def versions() -> list[str]:
        return [
            kubectl.json("get", "syncjob", name, "-n", namespace)["metadata"]["resourceVersion"]
            for name in ("steady-twin", "steady-truto")
        ]

    versions_before = versions()
    operator.stop()
    reads_before = _reads(emulators)
    gets_before = [admin.count("GetSyncJob", key) for admin, key in objects]
    _start(operator_factory, control_plane, emulators, tmp_path, resync_seconds=3)

    # Settled SyncJobs are left to the first drift pass, which re-reads each remote job through
    # its scope's list and writes nothing: not remotely, and not to the SyncJobs (their
    # resourceVersion stays).
    wait_until(
        lambda: all(a > b for a, b in zip(_reads(emulators), reads_before, strict=True)),
        timeout=30,
        what="the first drift pass re-read both providers",
    )
    time.sleep(2)  # let any write the resume might make land before looking
    assert remote_writes() == before
    assert versions() == versions_before
    # Lists per scope served it: no read of either object of its own.
    assert [admin.count("GetSyncJob", key) for admin, key in objects] == gets_before


def _reads(emulators: Emulators) -> tuple[int, int]:
    """Read calls so far: TwinMaker (get, list, tags, bulk tags) and Truto (get, list)."""
    twin = emulators.twinmaker_admin.calls().operations
    truto = emulators.truto_admin.calls().operations
    return (
        sum(
            twin.get(op, 0)
            for op in ("GetSyncJob", "ListSyncJobs", "ListTagsForResource", "GetResources")
        ),
        sum(truto.get(op, 0) for op in ("GetSyncJob", "ListSyncJobs")),
    )


@pytest.mark.parametrize("provider", ["truto", "twinmaker"])
def test_a_syncjob_deleted_while_its_create_was_in_flight_leaves_nothing_behind(
    kubectl: Cli,
    namespace: str,
    emulators: Emulators,
    control_plane: ControlPlane,
    operator_factory: list[OperatorProcess],
    tmp_path: Path,
    provider: str,
) -> None:
    admin = emulators.truto_admin if provider == "truto" else emulators.twinmaker_admin
    integration, workspace = f"crm-{namespace}", emulators.new_workspace()
    kubectl.apply(token_secret(), "-n", namespace)
    operator = _start(operator_factory, control_plane, emulators, tmp_path)
    creates_before = admin.count("CreateSyncJob")
    admin.inject_fault("CreateSyncJob", response_delay_ms=CREATE_LATENCY_MS, next_n=1)
    manifest = (
        truto_job("fleeting", integration)
        if provider == "truto"
        else twinmaker_job("fleeting", workspace)
    )
    kubectl.apply(manifest, "-n", namespace)
    wait_until(lambda: admin.count("CreateSyncJob") == creates_before + 1, what="create in flight")
    operator.kill()
    kubectl.run("delete", "syncjob", "fleeting", "-n", namespace, "--wait=false")

    _start(operator_factory, control_plane, emulators, tmp_path)

    wait_until(
        lambda: not kubectl.exists("syncjob", "fleeting", "-n", namespace),
        timeout=90,
        what="SyncJob deleted",
    )
    if provider == "truto":
        assert emulators.truto_jobs(integration) == []
    else:
        with pytest.raises(botocore.exceptions.ClientError):
            emulators.twinmaker.get_sync_job(syncSource="SITEWISE", workspaceId=workspace)
    assert admin.count("CreateSyncJob") == creates_before + 1
