"""The node itself: it joins the control plane at its version, Pods get their own network
namespace on the bridge, and a Pod of our image reaches the API server through the in-cluster
`kubernetes` Service with its ServiceAccount token."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest

from syncjob_devtools.localcluster.certificates import NODE_NAME
from syncjob_devtools.localnode import GATEWAY, NodeCluster
from syncjob_devtools.localnode.host import POD_CIDR
from tests.support.image import BuiltImage
from tests.support.kube import Cli, wait_until

pytestmark = pytest.mark.cluster

IN_CLUSTER_PROBE = """
from kubernetes import client, config
config.load_incluster_config()
print("server", client.VersionApi().get_code().git_version)
"""


def test_node_joins_ready_at_the_control_plane_version(node_kubectl: Cli) -> None:
    node = node_kubectl.json("get", "node", NODE_NAME)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    info = node["status"]["nodeInfo"]
    server = node_kubectl.json("version")["serverVersion"]["gitVersion"]
    assert info["kubeletVersion"] == server == "v1.35.4"
    assert info["containerRuntimeVersion"].startswith("containerd://1.6."), info
    assert {"type": "InternalIP", "address": GATEWAY} in node["status"]["addresses"]


def test_pod_of_our_image_reaches_the_api_server_in_cluster(
    node: NodeCluster, node_kubectl: Cli, operator_image: BuiltImage
) -> None:
    """TLS verified against the cluster CA, authenticated by the Pod's ServiceAccount token,
    through the Service address that kube-proxy routes: what the operator's Pod relies on."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "in-cluster-probe", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "probe",
                    "image": operator_image.reference,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", IN_CLUSTER_PROBE],
                }
            ],
        },
    }
    node_kubectl.apply(json.dumps(pod))
    try:
        phase = wait_until(
            lambda: (
                node_kubectl.json("get", "pod", "in-cluster-probe")["status"].get("phase")
                in ("Succeeded", "Failed")
                and node_kubectl.json("get", "pod", "in-cluster-probe")["status"]
            ),
            timeout=120,
            what="the probe Pod to finish",
        )
        logs = node_kubectl.run("logs", "in-cluster-probe").stdout
        assert phase["phase"] == "Succeeded", logs
        assert "server v1.35.4" in logs
        pod_ip = ipaddress.ip_address(phase["podIP"])
        assert pod_ip in ipaddress.ip_network(POD_CIDR)
        assert str(pod_ip) != GATEWAY
        # Its own network namespace: the Pod's address is on none of the host's interfaces.
        host_addresses = subprocess.run(
            ["ip", "-o", "addr"], capture_output=True, text=True, check=True
        ).stdout
        assert f" {pod_ip}/" not in host_addresses
    finally:
        node_kubectl.run("delete", "pod", "in-cluster-probe", "--wait=false", check=False)
