"""SyncJobs deleted while the operator's watch was away get no DELETED event: kopf lists them
again, and what the operator keeps (index, syncjob_objects, claims, drift pass members) must
then hold exactly the live objects."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncjob_devtools.apicounts import wait_for_drift_passes
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import Emulators, start_quick_operator, twinmaker_job
from tests.support.kube import Cli, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def namespace_operator(
    crd: None, control_plane: ControlPlane, emulators: Emulators, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = start_quick_operator(control_plane, emulators, tmp_path, f"--namespace={namespace}")
    yield process
    process.stop()


def _sample(operator: OperatorProcess, family: str) -> float:
    """The sum of a metric family's samples (0 when it has none)."""
    families = text_string_to_metric_families(operator.metrics())
    return sum(s.value for f in families if f.name == family for s in f.samples)


def test_objects_deleted_while_the_watch_was_away_are_dropped_after_the_relist(
    namespace_operator: OperatorProcess,
    control_plane: ControlPlane,
    kubectl: Cli,
    emulators: Emulators,
    namespace: str,
) -> None:
    names = ("kept", "gone-1", "gone-2")
    for name in names:
        # ObserveOnly: no finalizer, so deleting needs no operator.
        manifest = twinmaker_job(name, emulators.new_workspace(), managementPolicy="ObserveOnly")
        kubectl.apply(manifest, "-n", namespace)
    operator = namespace_operator
    wait_until(lambda: _sample(operator, "syncjob_objects") == len(names), what="3 counted")

    os.kill(operator.pid, signal.SIGSTOP)  # frozen: its watch misses what follows
    try:
        # A restarted API server starts its watch cache anew: the operator's watch cannot
        # resume from its resource version (410 Gone), so kopf lists again.
        control_plane.restart_apiserver()
        kubectl.run("delete", "syncjob", "gone-1", "gone-2", "-n", namespace)
    finally:
        os.kill(operator.pid, signal.SIGCONT)

    # The API server's restart, kopf's reconnect and its relist share a loaded machine with the
    # rest of the suite.
    wait_until(
        lambda: _sample(operator, "syncjob_objects") == 1,
        timeout=120,
        what="the deleted uncounted",
    )
    # Two whole drift passes after that: the pass walks one scope, the live object's workspace.
    assert wait_for_drift_passes(operator, 2, time.monotonic() + 60)
    assert _sample(operator, "syncjob_drift_pass_scopes") == 1
    assert operator.exit_code is None
