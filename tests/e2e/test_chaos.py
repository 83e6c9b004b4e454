"""The operator SIGKILLed over and over while 100 SyncJobs converge under injected faults, and
again while they are deleted: every SyncJob ends with exactly one remote job of its own, and
deletion leaves nothing behind, counted on the emulators rather than read from status."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncjob_devtools.localcluster import ControlPlane
from tests.e2e.conftest import TRUTO_TOKEN, Emulators
from tests.support.chaos import ChaosParams, log_tail, run_chaos
from tests.support.kube import Cli

pytestmark = pytest.mark.cluster

PARAMS = ChaosParams(
    jobs=100,
    truto_share=0.6,  # 60 Truto jobs over 3 integrations, identical within each
    integrations=3,
    kills_create=10,
    kills_delete=5,
    resync_seconds=5.0,
    poll_seconds=0.3,
    error_rate=0.1,
    latency_ms=150,
    # Bounded under pytest's 300 s timeout whatever the operator does: at worst about
    # 10 s (control plane) + 150 + 75 + 20 s (settle, remote counts, cleanup). A run that
    # passes needs about 60-85 s to all Ready (10 kills included) and 20 s to delete.
    converge_timeout=150.0,
    delete_timeout=75.0,
)


def test_repeated_sigkill_leaves_one_remote_job_per_syncjob_and_none_after_delete(
    crd: None,
    control_plane: ControlPlane,
    kubectl: Cli,
    emulators: Emulators,
    tmp_path: Path,
) -> None:
    report = run_chaos(
        control_plane,
        emulators.running,
        emulators.twinmaker_admin,
        emulators.truto_admin,
        truto_token=TRUTO_TOKEN,
        log_dir=tmp_path,
        params=PARAMS,
        kubectl=kubectl,
    )

    truto, twinmaker = PARAMS.truto_jobs, PARAMS.twinmaker_jobs
    checks = {
        "the harness ran to the end": report.error is None,
        f"{PARAMS.kills_create} + {PARAMS.kills_delete} kills": (
            (report.kills_create, report.kills_delete) == (PARAMS.kills_create, PARAMS.kills_delete)
        ),
        f"all {PARAMS.jobs} SyncJobs Ready": report.ready == PARAMS.jobs,
        "one distinct remote id per SyncJob": report.distinct_remote_ids == PARAMS.jobs,
        f"{truto} remote Truto jobs": report.truto_remote_jobs == truto,
        "Truto jobs per integration as applied": (
            report.truto_remote_per_integration == report.expected_truto_per_integration
        ),
        f"{twinmaker} remote TwinMaker jobs": report.twinmaker_remote_jobs == twinmaker,
        "every status id exists remotely": not report.status_ids_missing_remotely,
        "no remote job without its SyncJob": not report.remote_ids_unreferenced,
        "no Terminal condition": not report.terminal,
        "no SyncJob left after delete": report.remaining_syncjobs_after_delete == 0,
        "no remote job left after delete": report.remaining_remote_after_delete
        == {"truto": 0, "twinmaker": 0},
    }
    failed = [name for name, passed in checks.items() if not passed]
    assert not failed, (
        f"failed: {failed}\nproblems: {report.problems}\nreport:\n{report.to_json()}\n"
        f"operator log ({report.log_path}), last lines:\n{log_tail(report.log_path, 80)}"
    )
    assert report.ok, report.to_json()  # the driver's own verdict agrees
