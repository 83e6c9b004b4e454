"""wait_until_served: the operator starts kopf only once the API server serves SyncJobs; and
the client's generated Core API stays out of the process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from syncjob_operator.kube import UNREACHABLE, KubeCalls, KubeError, wait_until_served


class Discovery:
    """Answers get_api_resources: 404 (no CRD yet), then a list without syncjobs (the CRD
    exists, discovery does not serve it yet), then syncjobs."""

    def __init__(self) -> None:
        self.answers: list[Callable[[], Any]] = [
            self._not_found,
            lambda: SimpleNamespace(resources=[SimpleNamespace(name="kopfpeerings")]),
            lambda: SimpleNamespace(resources=[SimpleNamespace(name="syncjobs")]),
        ]
        self.calls = 0

    @staticmethod
    def _not_found() -> Any:
        raise ApiException(status=404, reason="Not Found")

    def get_api_resources(self, group: str, version: str) -> Any:
        assert (group, version) == ("syncjob.dev", "v1alpha1")
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]()


def _kube(discovery: Discovery, pool: ThreadPoolExecutor) -> KubeCalls:
    kube = KubeCalls.__new__(KubeCalls)
    kube.custom = discovery  # type: ignore[assignment]
    kube._executor = pool
    return kube


async def test_waits_until_syncjobs_are_served() -> None:
    discovery = Discovery()
    with ThreadPoolExecutor(1) as pool:
        await wait_until_served(_kube(discovery, pool), asyncio.Event(), interval=0.01)
    assert discovery.calls == 3


async def test_stops_waiting_when_the_operator_stops() -> None:
    discovery = Discovery()
    discovery.answers = [discovery._not_found]
    stop = asyncio.Event()
    with ThreadPoolExecutor(1) as pool:
        waiting = asyncio.create_task(wait_until_served(_kube(discovery, pool), stop, 0.01))
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(waiting, timeout=1)
    assert discovery.calls >= 1


async def test_a_request_the_api_server_did_not_answer_is_classified_retryable() -> None:
    def refused() -> None:
        cause = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
        raise urllib3.exceptions.MaxRetryError(None, "/api/v1/secrets", cause)  # type: ignore[arg-type]

    with ThreadPoolExecutor(1) as pool:
        kube = _kube(Discovery(), pool)
        with pytest.raises(KubeError) as raised:
            await kube(refused)
    error = raised.value
    assert (error.code, error.retryable) == (UNREACHABLE, True)
    assert error.message == "the API server did not answer (NewConnectionError)"
    assert error.__suppress_context__  # no chained traceback of urllib3's


def test_the_operator_never_loads_the_generated_core_v1_api() -> None:
    """Secrets go through the client's generic request path: `CoreV1Api` is 21 MiB of code in
    every operator process for two calls. A fresh interpreter, so other tests cannot load it."""
    probe = (
        "import sys, kubernetes.client as c, syncjob_operator.runner\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from syncjob_operator.kube import KubeCalls, KubeSecrets\n"
        "KubeSecrets(KubeCalls(c.ApiClient(), ThreadPoolExecutor(1)))\n"
        "print('kubernetes.client.api.core_v1_api' in sys.modules)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "False"
