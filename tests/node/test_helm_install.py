"""The chart as a platform team installs it: `helm install` puts the image built from the
Dockerfile into a Pod on the node; the kubelet's own startup, liveness and readiness probes
make the Deployment Available; the operator talks to the API server with its ServiceAccount
token and to the emulators over the Pod network; the examples go Ready. Security settings are
read back from the runtime's container spec, not from the manifest.

The tests share one release (fixture `release`) and run in file order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from syncjob_devtools.emulators.admin import twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.localnode import NodeCluster
from tests.chart.support import CHART, REPO
from tests.node.conftest import WORKSPACE
from tests.node.fleet import TRUTO_TOKEN, Fleet
from tests.node.release import (
    AWS_KEY,
    chart_values,
    container_id,
    install,
    kill_container,
    operator_pods,
    pod_metric,
    running,
    uninstall,
)
from tests.support.image import BuiltImage, build_image
from tests.support.kube import Cli, condition, wait_until
from tests.support.secrets import leaks

pytestmark = pytest.mark.cluster

EXAMPLES = REPO / "examples"
NAMESPACE, APPS, BURST, RELEASE = "syncjob-system", "plant", "burst", "syncjob"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"


@dataclass(frozen=True)
class Release:
    pod: dict[str, Any]  # the operator's Pod as the API server has it after the install

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])


def _operator_pod(kubectl: Cli) -> dict[str, Any]:
    (pod,) = operator_pods(kubectl, NAMESPACE, RELEASE)
    return pod


@pytest.fixture(scope="module")
def release(
    node_kubectl: Cli, node_helm: Cli, operator_image: BuiltImage, pod_emulators: RunningEmulators
) -> Iterator[Release]:
    node_kubectl.run("create", "namespace", BURST)
    install(node_helm, RELEASE, NAMESPACE, chart_values(pod_emulators, operator_image))
    node_kubectl.run("create", "namespace", APPS)
    yield Release(_operator_pod(node_kubectl))
    # The operator must still run to remove the remote jobs and the finalizers.
    for namespace in (APPS, BURST):
        node_kubectl.run("delete", "syncjobs", "--all", "-n", namespace, "--timeout=180s")
    uninstall(node_helm, node_kubectl, RELEASE, NAMESPACE)


def test_install_runs_the_built_image_with_the_kubelet_probes(
    release: Release, node_kubectl: Cli, operator_image: BuiltImage
) -> None:
    deployment = node_kubectl.json("get", "deployment", "-n", NAMESPACE, "-l", SELECTOR)
    (item,) = deployment["items"]
    assert condition(item, "Available")["status"] == "True"  # type: ignore[index]
    (status,) = release.pod["status"]["containerStatuses"]
    assert status["image"] == operator_image.reference
    assert (status["ready"], status["started"], status["restartCount"]) == (True, True, 0)
    (container,) = release.pod["spec"]["containers"]
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= container.keys()
    # In-cluster config from the projected ServiceAccount token: no kubeconfig anywhere.
    assert not any(e["name"] == "KUBECONFIG" for e in container.get("env", []))
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts


def test_examples_become_ready_through_the_pod(
    release: Release, node_kubectl: Cli, pod_emulators: RunningEmulators
) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        node_kubectl.run("apply", "-n", APPS, "-f", str(path))
    names = [
        doc["metadata"]["name"]
        for path in EXAMPLES.glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "SyncJob"
    ]
    assert len(names) == 2

    seen: list[Any] = []

    def all_ready() -> list[dict[str, Any]] | None:
        jobs = [node_kubectl.json("get", "syncjob", name, "-n", APPS) for name in names]
        seen[:] = [job.get("status") for job in jobs]
        ready = [condition(job, "Ready") for job in jobs]
        return jobs if all(c and c["status"] == "True" for c in ready) else None

    jobs = wait_until(all_ready, timeout=120, what=f"the examples Ready; status: {seen}")
    remote = twinmaker_client(pod_emulators.twinmaker_url).get_sync_job(
        workspaceId=WORKSPACE, syncSource="SITEWISE"
    )
    ids = {job["status"]["remote"]["id"] for job in jobs}
    assert remote["arn"] in ids


def test_logs_are_json_through_kubectl(release: Release, node_kubectl: Cli) -> None:
    log = node_kubectl.run("logs", "-n", NAMESPACE, release.name).stdout
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert records, "no log lines"
    assert all("message" in r for r in records), records[:3]
    # The examples' Secrets and the provider defaults reached the Pod; none of their values
    # (in any encoding) reached its log, its Events or its metrics.
    events = node_kubectl.run("get", "events", "-A", "-o", "json").stdout
    metrics = httpx.get(f"http://{release.pod['status']['podIP']}:8080/metrics", timeout=10).text
    secrets = {"AWS secret key": AWS_KEY[1], "Truto token": TRUTO_TOKEN}
    assert leaks(secrets, {"kubectl logs": log, "Events": events, "metrics": metrics}) == []


def test_metrics_are_scraped_from_the_pod_ip(release: Release) -> None:
    ip = release.pod["status"]["podIP"]
    response = httpx.get(f"http://{ip}:8080/metrics", timeout=10)
    assert response.status_code == 200
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert "syncjob_objects" in families, sorted(families)


def test_security_context_as_the_runtime_applies_it(
    release: Release, node: NodeCluster, node_kubectl: Cli
) -> None:
    spec = json.loads(node.node.containerd.ctr("containers", "info", container_id(release.pod)))[
        "Spec"
    ]
    process = spec["process"]
    assert (process["user"]["uid"], process["user"]["gid"]) == (10001, 10001)
    assert process["noNewPrivileges"] is True
    assert not process["capabilities"].get("bounding")
    assert not process["capabilities"].get("effective")
    assert spec["root"]["readonly"] is True
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    log = node_kubectl.run("logs", "-n", NAMESPACE, release.name).stdout
    for error in ("Read-only file system", "Permission denied"):
        assert error not in log


def _running_operator_pods(kubectl: Cli) -> list[str]:
    return [p["metadata"]["name"] for p in running(operator_pods(kubectl, NAMESPACE, RELEASE))]


@pytest.mark.timeout(600)
def test_operator_killed_in_a_burst_loses_and_duplicates_nothing(
    release: Release, node: NodeCluster, node_kubectl: Cli, pod_emulators: RunningEmulators
) -> None:
    """100 SyncJobs, half Truto with identical content: the operator's container SIGKILLed
    mid-burst (the kubelet restarts it), then its Pod deleted (the ReplicaSet makes a new one).
    Every SyncJob ends Ready with its own remote job, and no remote job is left over."""
    fleet = Fleet(node_kubectl, pod_emulators, BURST, "burst")
    fleet.apply()
    wait_until(lambda: fleet.ready() >= 10, timeout=120, what="the burst under way")
    kill_container(node, release.pod)
    wait_until(
        lambda: (
            _operator_pod(node_kubectl)["status"]["containerStatuses"][0]["restartCount"] == 1
            and _running_operator_pods(node_kubectl)
        ),
        timeout=120,
        what="the kubelet to restart the killed container",
    )
    node_kubectl.run("delete", "pod", "-n", NAMESPACE, release.name, "--wait=false")
    wait_until(
        lambda: [p for p in _running_operator_pods(node_kubectl) if p != release.name],
        timeout=120,
        what="a new operator Pod",
    )
    fleet.wait_ready(timeout=300)
    assert fleet.ownership_problems() == []


def _apiserver_writes(node: NodeCluster) -> dict[str, float]:
    """The API server's own count of writes, by `VERB resource`."""
    with node.plane.admin_client() as client:
        text = client.get(f"{node.plane.server}/metrics").text
    writes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            verb = sample.labels.get("verb", "")
            if sample.name.endswith("_total") and verb in ("POST", "PUT", "PATCH", "DELETE"):
                key = f"{verb} {sample.labels.get('resource', '')}"
                writes[key] = writes.get(key, 0) + sample.value
    return writes


def test_helm_upgrade_to_a_new_image_and_value(
    release: Release,
    node: NodeCluster,
    node_kubectl: Cli,
    node_helm: Cli,
    pod_emulators: RunningEmulators,
    operator_image: BuiltImage,
) -> None:
    """The settled burst stays as it is through `helm upgrade` to a rebuilt image with a new
    tag and a changed value: Recreate never runs two operators at once, the new one adopts
    every SyncJob without a remote write or a status write."""
    fleet = Fleet(node_kubectl, pod_emulators, BURST, "burst")
    assert fleet.ready() == 100
    upgraded = build_image(tag=f"{operator_image.reference.rsplit(':', 1)[1]}-upgrade")
    node.node.load_image(upgraded.archive)
    before = _apiserver_writes(node)
    overlaps: list[list[str]] = []
    done = threading.Event()

    def watch_pods() -> None:
        while not done.is_set():
            running = _running_operator_pods(node_kubectl)
            if len(running) > 1:
                overlaps.append(running)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_pods, daemon=True)
    watcher.start()
    try:
        node_helm.run(
            "upgrade",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--reuse-values",
            "--set",
            f"image.tag={upgraded.reference.rsplit(':', 1)[1]}",
            "--set",
            "operator.resyncSeconds=90",
            "--wait",
            "--timeout=180s",
            timeout=240,
        )
    finally:
        done.set()
        watcher.join()
    pod = _operator_pod(node_kubectl)
    (status,) = pod["status"]["containerStatuses"]
    assert status["image"] == upgraded.reference
    (container,) = pod["spec"]["containers"]
    assert "--resync-seconds=90" in container["args"]
    assert overlaps == [], "two operator Pods ran at once"
    # One drift pass of the new operator over every scope, then count.
    wait_until(
        lambda: pod_metric(pod, "syncjob_drift_pass_duration_seconds_count") >= 1,
        timeout=120,
        what="the new operator's first drift pass",
    )
    after = _apiserver_writes(node)
    caused = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    print(f"API writes caused by the upgrade: {caused}")
    syncjob_writes = {k: v for k, v in caused.items() if k.endswith(" syncjobs")}
    assert syncjob_writes == {}, caused
    assert fleet.ready() == 100
    assert fleet.ownership_problems() == []
