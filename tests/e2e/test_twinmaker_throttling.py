"""TwinMaker SyncJobs converge under AWS-like request rates: the emulator's token buckets
answer ThrottlingException (429) beyond a low rate, the operator paces itself (botocore's
adaptive mode, its own backoff) instead of hot-looping, and counts each throttled call in
syncjob_throttled_calls_total, by operation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.throttling import RequestRate
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import start_operator, twinmaker_job
from tests.support.kube import Cli, condition, wait_until

JOBS = 30
WRITES, READS = RequestRate(per_second=2, burst=2), RequestRate(per_second=5, burst=5)
# Low enough that a burst of JOBS is throttled; CreateWorkspace (the test's own set-up) has none.
RATES = {
    "CreateSyncJob": WRITES,
    "DeleteSyncJob": WRITES,
    "TagResource": WRITES,
    "UntagResource": WRITES,
    "GetSyncJob": READS,
    "ListSyncJobs": READS,
    "ListSyncResources": READS,
    "ListTagsForResource": READS,
}
# Calls per SyncJob the whole test may make, throttled ones included: a job needs a handful
# (create, reads while it settles, tags); a hot loop on 429s would make hundreds.
MAX_CALLS_PER_JOB = 40


@pytest.fixture(scope="module")
def throttled(crd: None) -> Iterator[RunningEmulators]:
    config = TwinMakerConfig(transition_seconds=0.3, throttling=True, request_rates=RATES)
    with RunningEmulators(config) as running:
        yield running


@pytest.fixture(scope="module")
def throttled_operator(
    control_plane: ControlPlane,
    throttled: RunningEmulators,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    log_dir = tmp_path_factory.mktemp("throttled")
    process = start_operator(control_plane, throttled, log_dir, resync_seconds=10, poll_seconds=0.3)
    yield process
    process.stop()


def _throttled_by_operation(metrics: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "syncjob_throttled_calls_total":
                assert sample.labels["provider"] == "AWSIoTTwinMaker"
                counts[sample.labels["operation"]] += int(sample.value)
    return counts


def test_syncjobs_converge_under_throttling_and_the_operator_counts_each_throttled_call(
    kubectl: Cli,
    namespace: str,
    throttled: RunningEmulators,
    throttled_operator: OperatorProcess,
) -> None:
    tm = twinmaker_client(throttled.twinmaker_url)
    workspaces = [f"{namespace}-ws{i}" for i in range(JOBS)]
    for workspace in workspaces:
        tm.create_workspace(workspaceId=workspace)
    manifests = "---\n".join(
        twinmaker_job(f"paced-{i}", workspace) for i, workspace in enumerate(workspaces)
    )
    kubectl.apply(manifests, "-n", namespace)

    def ready() -> int:
        items = kubectl.json("get", "syncjobs", "-n", namespace)["items"]
        return sum(1 for obj in items if (condition(obj, "Ready") or {}).get("status") == "True")

    # 30 creates at 2 per second is 15 s at best; the wait allows for a loaded machine.
    wait_until(lambda: ready() == JOBS, timeout=180, interval=1, what=f"{JOBS} Ready")

    with EmulatorAdmin(throttled.twinmaker_url) as admin:
        calls = admin.calls()
    emulator_throttled = Counter(calls.throttled)
    assert sum(emulator_throttled.values()) > 0, "the rates were never reached: nothing tested"
    # Every call the emulator refused reached the operator as a throttled call, by operation.
    operator_throttled = _throttled_by_operation(throttled_operator.metrics())
    assert operator_throttled == emulator_throttled
    operator_calls = sum(
        n for op, n in calls.operations.items() if op not in ("CreateWorkspace", "AssumeRole")
    )
    assert operator_calls <= MAX_CALLS_PER_JOB * JOBS, f"{operator_calls} calls: a hot loop"
