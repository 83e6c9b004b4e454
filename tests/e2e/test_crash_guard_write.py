"""The crash guard's write against the real API server: it is conditional on the object as it
was read, and a conflict is re-judged on the object as it is, so of two writers that read one
SyncJob and both decided to create its remote job (two operators overlapping, e.g. peers
starting at the same moment), exactly one goes ahead, while changes of other kinds made since
the read never stop a create."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from kubernetes import config

from syncjob_devtools.localcluster import ControlPlane
from syncjob_operator.kube import KubeCalls, KubeCrashGuard, KubeError
from syncjob_operator.model import CREATE_PENDING_ANNOTATION, FINALIZER, PendingCreate, SyncJob
from tests.e2e.conftest import twinmaker_job
from tests.support.kube import Cli

pytestmark = pytest.mark.cluster


@pytest.fixture
def writer(control_plane: ControlPlane) -> Iterator[KubeCrashGuard]:
    api = config.new_client_from_config(str(control_plane.kubeconfig))
    with ThreadPoolExecutor(2) as executor:
        yield KubeCrashGuard(KubeCalls(api, executor))
    api.close()


def _pending(content: str) -> PendingCreate:
    return PendingCreate(started_at=datetime.datetime.now(datetime.UTC), content_hash=content)


async def test_of_two_writers_that_read_the_same_object_one_marks_the_create(
    crd: None, kubectl: Cli, writer: KubeCrashGuard, namespace: str
) -> None:
    kubectl.apply(twinmaker_job("guarded", "ws-guarded"), "-n", namespace)
    read = SyncJob.from_body(kubectl.json("get", "syncjob", "guarded", "-n", namespace))
    assert read.resource_version

    # Any other change since the read (a label here; kopf's progress, a status) leaves the
    # decision to create standing: the write lands on the current version.
    kubectl.run("label", "syncjob", "guarded", "-n", namespace, "team=plant")
    first = _pending("first")
    await writer.mark_pending_create(read, first)
    with pytest.raises(KubeError) as conflict:
        await writer.mark_pending_create(read, _pending("second"))
    assert (conflict.value.code, conflict.value.retryable) == ("SyncJobChanged", True)

    stored = kubectl.json("get", "syncjob", "guarded", "-n", namespace)
    assert stored["metadata"]["annotations"][CREATE_PENDING_ANNOTATION] == first.encode()
    assert FINALIZER in stored["metadata"]["finalizers"]
    # The object as it is now: the next attempt's write lands.
    current = SyncJob.from_body(stored)
    await writer.mark_pending_create(current, _pending("again"))
    kubectl.run("patch", "syncjob", "guarded", "-n", namespace, "--type=merge",
                "-p", yaml.safe_dump({"metadata": {"finalizers": None}}))  # fmt: skip
