"""The chart's defaults as the kubelet enforces them: its NetworkPolicy admits every connection
the operator Pod made and took (read from the host's connection tracking, since the bridge CNI
enforces no policy), and 1,000 SyncJobs are reconciled inside the default requests and limits
without an OOMKill or a failed probe, with the container's peak memory read from its cgroup."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.localnode import GATEWAY, NodeCluster
from tests.node.fleet import Fleet
from tests.node.release import (
    chart_values,
    container_id,
    install,
    operator_pods,
    pod_metric,
    uninstall,
)
from tests.support.image import BuiltImage
from tests.support.kube import Cli

pytestmark = pytest.mark.cluster

NAMESPACE, RELEASE, APPS = "syncjob-sized", "sized", "sized-apps"
FLEET = 1_000  # half Truto (over 10 integrations), half TwinMaker (a workspace each)
CGROUPS = Path("/sys/fs/cgroup")


@pytest.fixture(scope="module")
def pod(
    node_kubectl: Cli, node_helm: Cli, operator_image: BuiltImage, pod_emulators: RunningEmulators
) -> Iterator[dict[str, Any]]:
    """The chart with its default resources, probes and NetworkPolicy."""
    install(node_helm, RELEASE, NAMESPACE, chart_values(pod_emulators, operator_image))
    node_kubectl.run("create", "namespace", APPS)
    (installed,) = operator_pods(node_kubectl, NAMESPACE, RELEASE)
    yield installed
    node_kubectl.run("delete", "syncjobs", "--all", "-n", APPS, "--timeout=300s", timeout=360)
    uninstall(node_helm, node_kubectl, RELEASE, NAMESPACE)
    node_kubectl.run("delete", "namespace", APPS, NAMESPACE, "--wait=false")


@dataclass(frozen=True)
class Connection:
    """One TCP connection as conntrack saw it: who opened it, and the endpoint that answered
    (after kube-proxy's DNAT of a Service address)."""

    source: str
    destination: str
    port: int
    replied_by: str
    replied_from_port: int


def tracked_connections() -> list[Connection]:
    lines = subprocess.run(
        ["conntrack", "-L", "-p", "tcp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    found = []
    for line in lines:
        fields = [f.split("=", 1) for f in line.split() if "=" in f]
        original, reply = dict(fields[:4]), dict(fields[4:8])
        found.append(
            Connection(
                original["src"],
                original["dst"],
                int(original["dport"]),
                reply["src"],
                int(reply["sport"]),
            )
        )
    return found


def admits(
    policies: list[dict[str, Any]], pod: dict[str, Any], kind: str, ip: str, port: int
) -> bool:
    """NetworkPolicy semantics for a peer outside the cluster's Pods (the node, the API server,
    the providers): a Pod not selected for `kind` (Ingress/Egress) by any policy is open; a
    selected one admits only what some rule of some policy allows. podSelector and
    namespaceSelector peers never match such a peer."""
    labels = pod["metadata"].get("labels", {})
    selecting = [
        p
        for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and p["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
    ]
    if not selecting:
        return True
    named = {
        p["name"]: p["containerPort"]
        for c in pod["spec"]["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }
    peers_key = "from" if kind == "Ingress" else "to"
    for policy in selecting:
        for rule in policy["spec"].get(kind.lower(), []):
            ports = rule.get("ports") or [{}]
            port_ok = any(
                p.get("protocol", "TCP") == "TCP"
                and (
                    "port" not in p
                    or named.get(p["port"], p["port"]) == port
                    or p.get("endPort", -1) >= port >= int(p["port"])
                )
                for p in ports
            )
            peers = rule.get(peers_key) or [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
            peer_ok = any(
                "ipBlock" in peer
                and ipaddress.ip_address(ip) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
                and not any(
                    ipaddress.ip_address(ip) in ipaddress.ip_network(e)
                    for e in peer["ipBlock"].get("except", [])
                )
                for peer in peers
            )
            if port_ok and peer_ok:
                return True
    return False


def test_the_network_policy_admits_every_connection_the_pod_made_and_took(
    pod: dict[str, Any], node: NodeCluster, node_kubectl: Cli, pod_emulators: RunningEmulators
) -> None:
    """The bridge CNI enforces no NetworkPolicy, so the chart's policy is checked against the
    connections the running Pod actually had: the kubelet's probes and a metrics scrape in,
    the API server and both providers out."""
    pod = node_kubectl.json("get", "pod", pod["metadata"]["name"], "-n", NAMESPACE)
    small = Fleet(node_kubectl, pod_emulators, APPS, "policy", truto=2, twinmaker=2)
    small.apply()
    small.wait_ready(timeout=120)
    assert pod_metric(pod, "syncjob_objects") == 4  # a scrape from the node, as Prometheus's
    ip = pod["status"]["podIP"]
    connections = tracked_connections()
    inbound = {(c.source, c.port) for c in connections if c.destination == ip}
    outbound = {(c.replied_by, c.replied_from_port) for c in connections if c.source == ip}
    api_port = int(urlsplit(node.plane.server).port or 443)
    providers = {
        (GATEWAY, int(urlsplit(url).port or 80))
        for url in (pod_emulators.twinmaker_url, pod_emulators.truto_url)
    }
    containers = {p["containerPort"] for c in pod["spec"]["containers"] for p in c["ports"]}
    # Probes reach both HTTP ports (readyz on metrics, kopf's healthz on health).
    assert {port for _, port in inbound} == containers
    assert {(GATEWAY, api_port), *providers} <= outbound
    policies = node_kubectl.json("get", "networkpolicies", "-n", NAMESPACE)["items"]
    assert policies, "the chart's NetworkPolicy is not installed"
    refused = [("in", *c) for c in inbound if not admits(policies, pod, "Ingress", *c)] + [
        ("out", *c) for c in outbound if not admits(policies, pod, "Egress", *c)
    ]
    assert refused == []
    # The check can refuse: a port the policy does not list is not admitted.
    assert not admits(policies, pod, "Ingress", GATEWAY, 9999)


def _cgroup(node: NodeCluster, pod: dict[str, Any], controller: str) -> Path:
    """The operator container's cgroup (v1, as on this machine) of one controller."""
    spec = json.loads(node.node.containerd.ctr("containers", "info", container_id(pod)))["Spec"]
    return CGROUPS / controller / spec["linux"]["cgroupsPath"].lstrip("/")


@pytest.mark.timeout(1200)
def test_a_thousand_syncjobs_fit_the_default_requests_and_limits(
    pod: dict[str, Any], node: NodeCluster, node_kubectl: Cli, pod_emulators: RunningEmulators
) -> None:
    pod = node_kubectl.json("get", "pod", pod["metadata"]["name"], "-n", NAMESPACE)
    cgroup = _cgroup(node, pod, "memory")
    limit = int((cgroup / "memory.limit_in_bytes").read_text())
    (container,) = pod["spec"]["containers"]
    assert limit == 512 * 2**20 == _bytes(container["resources"]["limits"]["memory"])
    fleet = Fleet(
        node_kubectl,
        pod_emulators,
        APPS,
        "sized",
        truto=FLEET // 2,
        twinmaker=FLEET // 2,
        integrations=10,
    )
    idle = int((cgroup / "memory.usage_in_bytes").read_text())
    fleet.apply()
    fleet.wait_ready(timeout=900)
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    cpu = int((_cgroup(node, pod, "cpuacct") / "cpuacct.usage").read_text()) / 1e9
    print(
        f"{FLEET} SyncJobs Ready: container memory {idle / 2**20:.0f} MiB before them,"
        f" peak {peak / 2**20:.0f} MiB"
        f" of {limit / 2**20:.0f} MiB; container CPU since start {cpu:.1f} s"
    )
    assert peak < limit
    assert fleet.ownership_problems() == []
    pod = node_kubectl.json("get", "pod", pod["metadata"]["name"], "-n", NAMESPACE)
    (status,) = pod["status"]["containerStatuses"]
    assert (status["restartCount"], status.get("lastState")) == (0, {}), status
    assert int((cgroup / "memory.failcnt").read_text()) == 0  # never pressed against the limit
    unhealthy = node_kubectl.json(
        "get",
        "events",
        "-n",
        NAMESPACE,
        "--field-selector",
        f"involvedObject.name={pod['metadata']['name']},reason=Unhealthy",
    )["items"]
    assert [e["message"] for e in unhealthy] == []
    everything = node_kubectl.json("get", "syncjobs", "-n", APPS)["items"]
    assert pod_metric(pod, "syncjob_objects") == len(everything)


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(quantity[:-2]) * units[quantity[-2:]]
