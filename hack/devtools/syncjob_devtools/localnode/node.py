"""One worker node joined to a local control plane: containerd, kubelet, kube-proxy (iptables
mode) and kube-scheduler, on the Pod bridge's gateway address. `node_cluster()` starts the
bridge, a control plane listening on that gateway, and the node, and takes them down in
reverse, putting the host back as it was."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localcluster.certificates import NODE_NAME, KeyPair
from syncjob_devtools.localcluster.kubeconfigs import write_kubeconfig
from syncjob_devtools.localcluster.processes import Process, free_port, spawn, stop_all
from syncjob_devtools.localnode.host import GATEWAY, POD_CIDR, HostChanges, HostError
from syncjob_devtools.localnode.runtime import Containerd

NODE_BINARIES = ("kubelet", "kube-proxy", "kube-scheduler", "k8s-pause", "ctr")


@dataclass
class Node:
    """Start with `start()` once `plane` runs on GATEWAY; `load_image` makes an image archive
    available to Pods; `stop()` leaves no Pod, container or process behind."""

    plane: ControlPlane
    work: Path
    ready_timeout: float = 90.0
    containerd: Containerd = field(init=False)
    _processes: list[Process] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.containerd = Containerd(self.work / "containerd")

    def start(self) -> None:
        missing = [b for b in NODE_BINARIES if shutil.which(b) is None]
        if missing:
            raise HostError(
                f'missing binaries on PATH: {", ".join(missing)}; run: eval "$(hack/bootstrap.sh)"'
            )
        self.work.mkdir(parents=True, exist_ok=True)
        self.containerd.start()
        assert self.containerd.process is not None
        self._processes.append(self.containerd.process)
        self._start_kubelet()
        self._start_proxy()
        self._start_scheduler()
        self._wait_until_ready()

    def load_image(self, archive: Path) -> None:
        self.containerd.load(archive)

    def stop(self) -> None:
        kubelet_and_friends = [p for p in self._processes if p.name != "containerd"]
        stop_all(kubelet_and_friends)
        if self.containerd.process is not None:
            self.containerd.stop_containers()
        stop_all([p for p in self._processes if p.name == "containerd"])
        self._processes.clear()

    def _kubeconfig(self, name: str, client: KeyPair, user: str) -> Path:
        return write_kubeconfig(
            self.work / f"{name}.kubeconfig",
            self.plane.server,
            self.plane.pki.ca.cert_pem,
            client,
            user,
        )

    def _write(self, name: str, document: dict[str, Any]) -> Path:
        path = self.work / name
        path.write_text(yaml.safe_dump(document))
        return path

    def _start_kubelet(self) -> None:
        pki = self.plane.pki
        root = self.work / "kubelet"
        root.mkdir(exist_ok=True)
        (self.work / "resolv.conf").write_text("")  # Pods resolve nothing: all by address
        config = self._write(
            "kubelet.yaml",
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "address": GATEWAY,
                "port": free_port(GATEWAY),
                "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1",
                "healthzPort": free_port(),
                "tlsCertFile": str(pki.path("kubelet.crt")),
                "tlsPrivateKeyFile": str(pki.path("kubelet.key")),
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": False},
                    "x509": {"clientCAFile": str(pki.path("ca.crt"))},
                },
                # Only clients with a certificate from this plane's CA get this far.
                "authorization": {"mode": "AlwaysAllow"},
                # This machine has cgroup v1 only (KEP-5573 makes v1 opt-in).
                "cgroupDriver": "cgroupfs",
                "failCgroupV1": False,
                "failSwapOn": False,
                "containerRuntimeEndpoint": self.containerd.endpoint,
                "podLogsDir": str(self.work / "pod-logs"),
                "resolvConf": str(self.work / "resolv.conf"),
                "podCIDR": POD_CIDR,
                "serializeImagePulls": False,
                # A shared test machine: evict only when truly out of room.
                "evictionHard": {
                    "memory.available": "100Mi",
                    "nodefs.available": "1%",
                    "imagefs.available": "1%",
                },
                "imageGCHighThresholdPercent": 100,
                "syncFrequency": "10s",
                "fileCheckFrequency": "10s",
            },
        )
        for name, pair in (("kubelet.crt", pki.kubelet_serving), ("node.crt", pki.node)):
            pki.path(name).write_bytes(pair.cert_pem)
            pki.path(name.replace(".crt", ".key")).write_bytes(pair.key_pem)
            pki.path(name.replace(".crt", ".key")).chmod(0o600)
        kubeconfig = self._kubeconfig("kubelet", pki.node, f"system:node:{NODE_NAME}")
        argv = [
            "kubelet",
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY}",
            f"--root-dir={root}",
            "--v=1",
        ]
        self._processes.append(spawn("kubelet", argv, self.work))

    def _start_proxy(self) -> None:
        kubeconfig = self._kubeconfig("kube-proxy", self.plane.pki.proxy, "system:kube-proxy")
        config = self._write(
            "kube-proxy.yaml",
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "iptables",
                "clientConnection": {"kubeconfig": str(kubeconfig)},
                "hostnameOverride": NODE_NAME,
                "bindAddress": GATEWAY,
                "healthzBindAddress": f"127.0.0.1:{free_port()}",
                "metricsBindAddress": f"127.0.0.1:{free_port()}",
                "clusterCIDR": POD_CIDR,
                "nodePortAddresses": [f"{GATEWAY}/32"],
                # No conntrack table sizing: that is a host-wide sysctl this node leaves alone.
                "conntrack": {
                    "maxPerCore": 0,
                    "min": 0,
                    "tcpEstablishedTimeout": "0s",
                    "tcpCloseWaitTimeout": "0s",
                },
                # Off: it would set route_localnet and open NodePorts on 127.0.0.1.
                "iptables": {"localhostNodePorts": False},
            },
        )
        argv = ["kube-proxy", f"--config={config}", "--v=1"]
        self._processes.append(spawn("kube-proxy", argv, self.work))

    def _start_scheduler(self) -> None:
        kubeconfig = self._kubeconfig(
            "kube-scheduler", self.plane.pki.scheduler, "system:kube-scheduler"
        )
        argv = [
            "kube-scheduler",
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
        ]
        self._processes.append(spawn("kube-scheduler", argv, self.work))

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last = "no Node object yet"
        with self.plane.admin_client() as client:
            while time.monotonic() < deadline:
                for proc in self._processes:
                    if proc.popen.poll() is not None:
                        raise HostError(
                            f"{proc.name} exited with code {proc.popen.returncode} before the"
                            f" node was Ready; last log lines ({proc.log}):\n{proc.tail()}"
                        )
                try:
                    response = client.get(f"{self.plane.server}/api/v1/nodes/{NODE_NAME}")
                    if response.status_code == 200:
                        conditions = response.json()["status"].get("conditions", [])
                        ready = [c for c in conditions if c["type"] == "Ready"]
                        if ready and ready[0]["status"] == "True":
                            return
                        last = f"Ready condition: {ready[0] if ready else 'none'}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.5)
        logs = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail(15)}" for p in self._processes)
        raise HostError(f"node {NODE_NAME} not Ready after {self.ready_timeout}s: {last}\n{logs}")


@dataclass
class NodeCluster:
    plane: ControlPlane
    node: Node


@contextmanager
def node_cluster(workdir: Path | None = None) -> Iterator[NodeCluster]:
    """The Pod bridge, a control plane on its gateway, and a Ready node; torn down in
    reverse, with the host's network, mounts, cgroups and sysctls restored."""
    work = workdir or Path(tempfile.mkdtemp(prefix="syncjob-node-"))
    host = HostChanges()
    host.create()
    try:
        with ControlPlane(workdir=work / "plane", address=GATEWAY) as plane:
            node = Node(plane, work / "node")
            try:
                node.start()
                yield NodeCluster(plane, node)
            finally:
                node.stop()
    finally:
        host.restore()
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)
