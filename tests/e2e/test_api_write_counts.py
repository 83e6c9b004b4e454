"""The operator's API writes, counted by the API server itself (apiserver_request_total): at
most four per SyncJob to Ready (crash guard, kopf's metadata patch, status, Event), none while
nothing changes, none across a restart."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncjob_devtools.apicounts import api_writes, operator_writes, wait_for_drift_passes
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import (
    Emulators,
    start_quick_operator,
    token_secret,
    truto_job,
    twinmaker_job,
)
from tests.support.kube import Cli, condition, wait_until

pytestmark = pytest.mark.cluster

JOBS_PER_PROVIDER = 50
JOBS = 2 * JOBS_PER_PROVIDER
WRITES_PER_OBJECT = 4
DRIFT_PASSES_DEADLINE_SECONDS = 60.0


@pytest.fixture
def counted_operator(
    crd: None, control_plane: ControlPlane, emulators: Emulators, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator of this namespace alone: the cluster-wide counts are then its writes and the
    test's own. The first syncProgress read is a real status change, once per TwinMaker job,
    that the benchmark counts apart (its settle phase): not read here."""
    process = start_quick_operator(
        control_plane, emulators, tmp_path, f"--namespace={namespace}", "--sync-progress-pages=0"
    )
    yield process
    process.stop()


def _writes(kubectl: Cli) -> Counter[str]:
    return api_writes(kubectl.run("get", "--raw", "/metrics").stdout)


def _all_ready(kubectl: Cli, namespace: str) -> bool:
    items = kubectl.json("get", "syncjobs", "-n", namespace)["items"]
    ready = [obj for obj in items if (condition(obj, "Ready") or {}).get("status") == "True"]
    return len(ready) == JOBS


def _drift_passes(operator: OperatorProcess, more: int) -> None:
    deadline = time.monotonic() + DRIFT_PASSES_DEADLINE_SECONDS
    assert wait_for_drift_passes(operator, more, deadline), f"fewer than {more} drift passes"


def test_writes_per_syncjob_to_ready_settled_and_across_a_restart(
    counted_operator: OperatorProcess, kubectl: Cli, emulators: Emulators, namespace: str
) -> None:
    manifests = [token_secret()]
    for i in range(JOBS_PER_PROVIDER):
        manifests.append(twinmaker_job(f"twin-{i}", emulators.new_workspace()))
        manifests.append(truto_job(f"truto-{i}", f"counts-{namespace}-{i % 5}"))
    before = _writes(kubectl)
    kubectl.apply("---\n".join(manifests), "-n", namespace)
    wait_until(lambda: _all_ready(kubectl, namespace), timeout=180, interval=1, what="all Ready")
    _drift_passes(counted_operator, 2)  # kopf's Events are posted in the background
    burst = _writes(kubectl) - before
    assert burst["POST syncjobs"] == JOBS, burst  # the counts see this namespace's creates
    assert burst["POST events"] >= JOBS, burst  # one Event per SyncJob at least
    # The Secret all Truto jobs share gets the operator's hold once, not once per SyncJob.
    assert burst["PATCH secrets"] == 1, burst
    assert operator_writes(burst) - 1 <= WRITES_PER_OBJECT * JOBS, burst

    settled = _writes(kubectl)
    _drift_passes(counted_operator, 2)
    quiet = _writes(kubectl) - settled
    assert operator_writes(quiet) == 0, quiet

    counted_operator.stop()
    before_restart = _writes(kubectl)
    counted_operator.start()
    # Every object resumed, then two whole drift passes over all of them.
    _drift_passes(counted_operator, 2)
    restart = _writes(kubectl) - before_restart
    assert operator_writes(restart) == 0, restart
