"""The chart as a platform team installs it: `helm install` puts the image built from the
Dockerfile into a Pod on the node; the kubelet's own startup, liveness and readiness probes
make the Deployment Available; the operator talks to the API server with its ServiceAccount
token and to the emulators over the Pod network; the examples go Ready. Security settings are
read back from the runtime's container spec, not from the manifest.

The tests share one release (fixture `release`) and run in file order."""

from __future__ import annotations

import json
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
from tests.chart.support import CHART, REPO, value_args
from tests.node.conftest import WORKSPACE
from tests.support.image import BuiltImage
from tests.support.kube import Cli, condition, wait_until

pytestmark = pytest.mark.cluster

EXAMPLES = REPO / "examples"
NAMESPACE, APPS, RELEASE = "syncjob-system", "plant", "syncjob"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"


@dataclass(frozen=True)
class Release:
    pod: dict[str, Any]  # the operator's Pod as the API server has it after the install

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def container_id(self) -> str:
        (status,) = self.pod["status"]["containerStatuses"]
        return str(status["containerID"]).removeprefix("containerd://")


def _operator_pod(kubectl: Cli) -> dict[str, Any]:
    (pod,) = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", SELECTOR)["items"]
    return dict(pod)


@pytest.fixture(scope="module")
def release(
    node_kubectl: Cli, node_helm: Cli, operator_image: BuiltImage, pod_emulators: RunningEmulators
) -> Iterator[Release]:
    repository, tag = operator_image.reference.rsplit(":", 1)
    # The chart's default repository, as the kubelet normalises it.
    assert repository == "docker.io/library/syncjob-operator"
    values = {
        "image": {"tag": tag, "pullPolicy": "Never"},
        "providerDefaults": {
            "env": {
                "AWS_REGION": "us-east-1",
                "SYNCJOB_TWINMAKER_ENDPOINT_URL": pod_emulators.twinmaker_url,
                "SYNCJOB_TRUTO_BASE_URL": pod_emulators.truto_url,
            }
        },
    }
    for namespace in (NAMESPACE, APPS):
        node_kubectl.run("create", "namespace", namespace)
    # --wait: Available only once the kubelet's probes pass in the running Pod.
    node_helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        *value_args(values),
        "--wait",
        "--timeout=180s",
        timeout=240,
    )
    yield Release(_operator_pod(node_kubectl))
    # The operator must still run to remove the remote jobs and the finalizers.
    node_kubectl.run("delete", "syncjobs", "--all", "-n", APPS, "--timeout=90s")
    node_helm.run("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", timeout=180)


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
    lines = node_kubectl.run("logs", "-n", NAMESPACE, release.name).stdout.splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert records, "no log lines"
    assert all("message" in r for r in records), records[:3]


def test_metrics_are_scraped_from_the_pod_ip(release: Release) -> None:
    ip = release.pod["status"]["podIP"]
    response = httpx.get(f"http://{ip}:8080/metrics", timeout=10)
    assert response.status_code == 200
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert "syncjob_objects" in families, sorted(families)


def test_security_context_as_the_runtime_applies_it(
    release: Release, node: NodeCluster, node_kubectl: Cli
) -> None:
    spec = json.loads(node.node.containerd.ctr("containers", "info", release.container_id))["Spec"]
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
