"""The operator SIGKILLed over and over while 100 SyncJobs converge under injected faults, again
while every spec changes, and again while they are deleted. Among the faults, writes that take
effect and then fail (a 5xx, a reset connection, an answer slower than the operator's timeout).
Every SyncJob ends with exactly one remote job of its own, at its new spec after the update,
and deletion leaves nothing behind, counted on the emulators rather than read from status."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncjob_devtools.localcluster import ControlPlane
from tests.e2e.conftest import TRUTO_TOKEN, Emulators
from tests.support.chaos import ChaosParams, log_tail, run_chaos
from tests.support.kube import Cli

# The phases' deadlines below plus about 40 s of setup, settling, counting and cleanup.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(480)]

# As the emulators count them (GET /_emulator/calls, "injected").
POST_COMMIT_FAILURES = ("500 after commit", "connection reset after commit", "response delay")
PARAMS = ChaosParams(
    jobs=100,
    truto_share=0.6,  # 60 Truto jobs over 3 integrations, identical within each
    integrations=3,
    kills_create=10,
    kills_update=5,
    kills_delete=5,
    resync_seconds=5.0,
    poll_seconds=0.3,
    error_rate=0.1,
    latency_ms=150,
    # 6% of writes fail after taking effect; a third of those (2%) by an answer held 17 s, past
    # the operator's 15 s read timeout: a few per run, each holding up its SyncJob about 20 s.
    post_commit_rate=0.06,
    converge_timeout=180.0,
    update_timeout=120.0,
    delete_timeout=120.0,
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
        f"{PARAMS.kills_create} + {PARAMS.kills_update} + {PARAMS.kills_delete} kills": (
            (report.kills_create, report.update.kills, report.kills_delete)
            == (PARAMS.kills_create, PARAMS.kills_update, PARAMS.kills_delete)
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
        "writes failed after their commit, each way": all(
            sum(kinds.get(kind, 0) for kinds in report.injected_faults.values()) > 0
            for kind in POST_COMMIT_FAILURES
        ),
        f"all {PARAMS.jobs} SyncJobs Ready at their new spec": report.update.updated == PARAMS.jobs,
        "one distinct remote id per SyncJob after update": (
            report.update.distinct_remote_ids == PARAMS.jobs
        ),
        "Truto jobs per integration unchanged by the update": (
            report.update.truto_remote_per_integration == report.expected_truto_per_integration
        ),
        f"{twinmaker} remote TwinMaker jobs after update": (
            report.update.twinmaker_remote_jobs == twinmaker
        ),
        "every remote job at the new spec": not report.update.remote_with_old_content,
        "status ids and remote jobs match after update": not (
            report.update.status_ids_missing_remotely or report.update.remote_ids_unreferenced
        ),
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
