"""The chart installed on the node as a user installs it, and its operator Pods as the
kubelet runs them: values pointing at the built image and the emulators on the Pod network,
Pods read back from the API server, metrics scraped from a Pod's IP, containers SIGKILLed
through the runtime."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from syncjob_devtools.chartvalues import node_chart_values
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.localnode import NodeCluster
from tests.chart.support import CHART, value_args
from tests.support.image import BuiltImage
from tests.support.kube import Cli

# For SyncJobs without credentialsSecretRef (tests/node/fleet.py): the examples' key pair.
AWS_KEY = ("AKIAEXAMPLEEXAMPLE00", "example-secret-access-key")


def chart_values(emulators: RunningEmulators, image: BuiltImage) -> dict[str, Any]:
    """The node's chart values, with the examples' AWS key pair as the default credentials."""
    return node_chart_values(
        image.reference,
        twinmaker_url=emulators.twinmaker_url,
        truto_url=emulators.truto_url,
        env={"AWS_ACCESS_KEY_ID": AWS_KEY[0], "AWS_SECRET_ACCESS_KEY": AWS_KEY[1]},
    )


def install(helm: Cli, release: str, namespace: str, values: dict[str, Any]) -> None:
    """`helm install --wait`: Available only once the kubelet's probes pass in every Pod."""
    helm.run(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        *value_args(values),
        "--wait",
        "--timeout=180s",
        timeout=240,
    )


def uninstall(helm: Cli, kubectl: Cli, release: str, namespace: str) -> None:
    """`helm uninstall --wait`, then until the operator's Pods are gone: Helm waits for the
    Deployment, not its Pods, and an operator still shutting down would act on what the next
    test applies."""
    helm.run("uninstall", release, "--namespace", namespace, "--wait", timeout=180)
    wait_for_no_operator_pods(kubectl, namespace, release)


def wait_for_no_operator_pods(kubectl: Cli, namespace: str, release: str) -> None:
    kubectl.run(
        "wait", "--for=delete", "pod", "-n", namespace, "-l",
        f"app.kubernetes.io/instance={release}", "--timeout=120s", timeout=150,
    )  # fmt: skip


def operator_pods(kubectl: Cli, namespace: str, release: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={release}"
    pods: list[dict[str, Any]] = kubectl.json("get", "pods", "-n", namespace, "-l", selector)[
        "items"
    ]
    return pods


def running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Pods whose operator container is running now."""
    return [
        p
        for p in pods
        if any("running" in c.get("state", {}) for c in p["status"].get("containerStatuses", []))
    ]


def container_id(pod: dict[str, Any]) -> str:
    (status,) = pod["status"]["containerStatuses"]
    return str(status["containerID"]).removeprefix("containerd://")


def kill_container(node: NodeCluster, pod: dict[str, Any]) -> None:
    """SIGKILL from the runtime: the operator gets no chance to say goodbye."""
    node.node.containerd.ctr("tasks", "kill", "--signal=SIGKILL", container_id(pod))


def pod_metric(pod: dict[str, Any], name: str) -> float:
    """The sum of a metric's samples, scraped from the Pod's IP as Prometheus would."""
    text = httpx.get(f"http://{pod['status']['podIP']}:8080/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )
