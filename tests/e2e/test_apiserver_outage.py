"""kube-apiserver killed and kept down during a burst of SyncJobs, and again while idle: the
operator keeps running, everything converges, the watch is alive afterwards, and the log says
what failed in a line per failing scope or object per attempt, without tracebacks."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import (
    Emulators,
    get_syncjob,
    start_quick_operator,
    token_secret,
    truto_job,
    twinmaker_job,
    wait_ready,
)
from tests.support.kube import Cli, condition, wait_until

pytestmark = pytest.mark.cluster

JOBS_PER_PROVIDER = 40
JOBS = 2 * JOBS_PER_PROVIDER
DOWN_SECONDS = 20.0
# Warnings and errors two outages may log: a line per failing object or scope (a drift pass,
# a watch, a change handler, a patch or Event kopf could not send) per attempt, a few attempts.
PROBLEM_LINES_PER_OBJECT = 4
LOG_LINES_PER_OBJECT = 8  # the problems, and what goes well: a line per remote job created


@pytest.fixture
def outage_operator(
    crd: None, control_plane: ControlPlane, emulators: Emulators, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator for this namespace, by a pattern: kopf then also watches namespaces, as it
    does cluster-wide, and the log holds only this test's objects."""
    process = start_quick_operator(control_plane, emulators, tmp_path, f"--namespace={namespace}*")
    yield process
    process.stop()


def _ready_count(kubectl: Cli, namespace: str) -> int:
    items = kubectl.json("get", "syncjobs", "-n", namespace)["items"]
    return sum((condition(obj, "Ready") or {}).get("status") == "True" for obj in items)


def test_apiserver_outages_are_survived_quietly(
    outage_operator: OperatorProcess,
    control_plane: ControlPlane,
    kubectl: Cli,
    emulators: Emulators,
    namespace: str,
) -> None:
    manifests = [token_secret()]
    for i in range(JOBS_PER_PROVIDER):
        manifests.append(twinmaker_job(f"twin-{i}", emulators.new_workspace()))
        manifests.append(truto_job(f"truto-{i}", f"outage-{namespace}-{i % 4}"))
    kubectl.apply(manifests[0], "-n", namespace)
    log = outage_operator.log_path
    lines_before = len(log.read_text().splitlines())

    # The burst: applied while the outage starts, so some objects are mid-reconcile.
    burst = threading.Thread(
        target=kubectl.apply, args=("---\n".join(manifests[1:]), "-n", namespace)
    )
    burst.start()
    wait_until(lambda: _ready_count(kubectl, namespace) > 0, timeout=60, what="a first Ready")
    burst.join()
    control_plane.restart_apiserver(down_seconds=DOWN_SECONDS)
    wait_until(
        lambda: _ready_count(kubectl, namespace) == JOBS, timeout=120, interval=1, what="all Ready"
    )

    # Idle: nothing changing, then an outage.
    control_plane.restart_apiserver(down_seconds=DOWN_SECONDS)

    # The watch is alive: a new object and an edit are handled.
    kubectl.apply(twinmaker_job("after", emulators.new_workspace()), "-n", namespace)
    wait_ready(kubectl, namespace, "after")
    edited = yaml.safe_load(truto_job("truto-0", f"outage-{namespace}-0"))
    edited["spec"]["truto"]["resources"].append({"resource": "crm/accounts", "method": "list"})
    kubectl.apply(yaml.safe_dump(edited), "-n", namespace)
    wait_until(
        lambda: get_syncjob(kubectl, namespace, "truto-0")["status"].get("observedGeneration") == 2,
        timeout=60,
        what="the edit handled",
    )
    assert _ready_count(kubectl, namespace) == JOBS + 1

    assert outage_operator.exit_code is None, outage_operator.log_tail()
    added = log.read_text().splitlines()[lines_before:]
    tracebacks = [line for line in added if line.startswith("Traceback")]
    assert tracebacks == [], "\n".join(added[-80:])
    assert len(added) <= LOG_LINES_PER_OBJECT * JOBS, len(added)
    problems = [line for line in added if "[WARNING " in line or "[ERROR " in line]
    assert len(problems) <= PROBLEM_LINES_PER_OBJECT * JOBS, "\n".join(problems)
    # kopf's requests log their first attempt and the one they give up on, not each retry.
    retries = [line for line in problems if re.search(r"Request attempt #([2-9]|\d\d)", line)]
    assert [line for line in retries if "escalating" not in line] == []
