"""A shared request budget per Truto token: a burst of SyncJobs sharing one token against a
rate-limited Truto converges with no 429 after the first, because every request waits for the
budget the responses state instead of discovering the limit on its own."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.truto import TrutoConfig
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import TRUTO_TOKEN, start_operator, token_secret, truto_job
from tests.support.kube import Cli, condition, wait_until

JOBS = 40
LIMIT, WINDOW = 20, 3.0  # requests per token per window


@pytest.fixture(scope="module")
def limited(crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulators]:
    truto = TrutoConfig(
        tokens=frozenset({TRUTO_TOKEN}), rate_limit=LIMIT, rate_limit_window_seconds=WINDOW
    )
    with RunningEmulators(TwinMakerConfig(), truto) as running:
        yield running


@pytest.fixture(scope="module")
def limited_operator(
    control_plane: ControlPlane, limited: RunningEmulators, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    log_dir = tmp_path_factory.mktemp("limited")
    process = start_operator(control_plane, limited, log_dir, resync_seconds=30, poll_seconds=0.3)
    yield process
    process.stop()


def _rate_limited(operator: OperatorProcess) -> int:
    found = re.findall(
        r'^syncjob_remote_calls_total\{[^}]*provider="Truto"[^}]*result="RateLimited"[^}]*\} (\S+)',
        operator.metrics(),
        re.M,
    )
    return int(sum(float(n) for n in found))


def test_a_burst_sharing_one_token_waits_for_the_budget_instead_of_hitting_429s(
    kubectl: Cli, namespace: str, limited_operator: OperatorProcess
) -> None:
    kubectl.apply(token_secret(), "-n", namespace)
    manifests = "---\n".join(truto_job(f"burst-{i}", f"crm-{i % 4}") for i in range(JOBS))
    kubectl.apply(manifests, "-n", namespace)

    def ready() -> int:
        items = kubectl.json("get", "syncjobs", "-n", namespace)["items"]
        return sum(1 for obj in items if (condition(obj, "Ready") or {}).get("status") == "True")

    # About 3 calls per job at 20 per 3 s: some 20 s; the wait allows for a loaded machine.
    wait_until(lambda: ready() == JOBS, timeout=180, interval=1, what=f"{JOBS} Ready")
    assert _rate_limited(limited_operator) <= 1
