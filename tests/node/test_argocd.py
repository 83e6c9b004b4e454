"""The whole GitOps path on the node: Argo CD (its application controller and repo-server,
built from the Go module proxy) installs the operator from the chart in a local git
repository, with the built image, so the kubelet runs it; a second Application holding the
examples' SyncJobs then becomes Healthy through that Pod."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.localargocd import LocalArgoCD
from syncjob_devtools.localnode import NodeCluster
from tests.chart.support import CHART, REPO
from tests.node.release import chart_values, operator_pods, running, wait_for_no_operator_pods
from tests.support.argocd import documented_configmap
from tests.support.gitops import GitRepo, application, resource_status
from tests.support.image import BuiltImage
from tests.support.kube import Cli, wait_until

pytestmark = pytest.mark.cluster

OPERATOR_APP, OPERATOR_NS = "syncjob-operator", "syncjob-gitops"
JOBS_APP, JOBS_NS = "plant-syncjobs", "plant-gitops"
# Argo CD deletes what an Application tracks before the Application itself goes.
CASCADE = "resources-finalizer.argocd.argoproj.io"


@dataclass
class GitOps:
    kubectl: Cli
    repo: GitRepo
    revision: str  # the chart and the examples, committed

    def app(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.kubectl.json("get", "application", name, "-n", "argocd")
        return found

    def wait_synced_healthy(self, name: str, revision: str, timeout: float) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def synced_healthy() -> dict[str, Any] | None:
            app = self.app(name)
            status = app.get("status", {})
            seen.update({k: status.get(k) for k in ("sync", "health", "conditions")})
            sync, health = status.get("sync", {}), status.get("health", {})
            done = (status.get("operationState") or {}).get("phase") == "Succeeded"
            return (
                app
                if (sync.get("status"), sync.get("revision"), health.get("status"), done)
                == ("Synced", revision, "Healthy", True)
                else None
            )

        found: dict[str, Any] = wait_until(
            synced_healthy, timeout=timeout, interval=1, what=f"{name} Synced + Healthy: {seen}"
        )
        return found

    def add(self, name: str, namespace: str, **source: Any) -> None:
        app = application(name, self.repo, namespace, **source)
        app["metadata"]["finalizers"] = [CASCADE]
        self.kubectl.apply(yaml.safe_dump(app))

    def remove(self, name: str) -> None:
        self.kubectl.run(
            "delete", "application", name, "-n", "argocd", "--timeout=300s", timeout=360
        )


@pytest.fixture(scope="module")
def gitops(node: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitOps]:
    work = tmp_path_factory.mktemp("node-gitops")
    kubectl = Cli("kubectl", node.plane.env())
    with LocalArgoCD(node.plane, work / "argocd"):
        # The SyncJob health check, registered as docs/argocd.md tells users to.
        kubectl.run(
            "apply", "--server-side", "-n", "argocd", "-f", "-", stdin=documented_configmap()
        )
        repo = GitRepo(work / "repo").init()
        shutil.copytree(CHART, repo.path / "charts" / CHART.name)
        shutil.copytree(REPO / "examples", repo.path / "examples")
        gitops = GitOps(kubectl, repo, repo.commit("the operator's chart and the examples"))
        try:
            yield gitops
        finally:
            # The SyncJobs first, while the operator runs: it deletes their remote jobs.
            for name in (JOBS_APP, OPERATOR_APP):
                if kubectl.exists("application", name, "-n", "argocd"):
                    gitops.remove(name)
            wait_for_no_operator_pods(kubectl, OPERATOR_NS, OPERATOR_APP)
            # Argo CD leaves the chart's CRD in place (as Helm does), so the next install
            # finds it. A CRD being deleted all the same must be gone before that install.
            deleting = kubectl.run(
                "get", "crd", "syncjobs.syncjob.dev", "--ignore-not-found",
                "-o", "jsonpath={.metadata.deletionTimestamp}",
            ).stdout  # fmt: skip
            if deleting:
                kubectl.run("wait", "--for=delete", "crd/syncjobs.syncjob.dev", "--timeout=120s")
    kubectl.run("delete", "namespace", OPERATOR_NS, JOBS_NS, "--ignore-not-found", "--wait=false")


def test_argocd_installs_the_operator_from_the_chart_and_its_pod_runs(
    gitops: GitOps,
    node_kubectl: Cli,
    operator_image: BuiltImage,
    pod_emulators: RunningEmulators,
) -> None:
    values = chart_values(pod_emulators, operator_image)
    gitops.add(
        OPERATOR_APP,
        OPERATOR_NS,
        path=f"charts/{CHART.name}",
        helm={"valuesObject": values},
    )
    # Healthy means the Deployment is Available: its Pod passed the kubelet's probes.
    app = gitops.wait_synced_healthy(OPERATOR_APP, gitops.revision, timeout=300)
    assert resource_status(app, "Deployment", OPERATOR_APP)["health"]["status"] == "Healthy"
    (pod,) = running(operator_pods(node_kubectl, OPERATOR_NS, OPERATOR_APP))
    (container,) = pod["spec"]["containers"]
    assert container["image"] == operator_image.reference.removeprefix("docker.io/library/")


def test_an_application_of_syncjobs_becomes_healthy_through_the_pod(
    gitops: GitOps, node_kubectl: Cli
) -> None:
    gitops.add(JOBS_APP, JOBS_NS, path="examples")
    app = gitops.wait_synced_healthy(JOBS_APP, gitops.revision, timeout=300)
    jobs = node_kubectl.json("get", "syncjobs", "-n", JOBS_NS)["items"]
    assert {j["metadata"]["name"] for j in jobs} == {
        r["name"] for r in app["status"]["resources"] if r["kind"] == "SyncJob"
    }
    for job in jobs:
        assert job["status"]["remote"]["id"]
        health = resource_status(app, "SyncJob", job["metadata"]["name"])["health"]
        assert health["status"] == "Healthy"
