"""A real worker node for the local control plane: containerd + runc + CNI bridge, kubelet,
kube-proxy and kube-scheduler, so that the chart's Deployment runs the image built from the
Dockerfile as a Pod. Linux, root, cgroup v1 or v2; the Debian packages come from
hack/install-debs.sh and the Kubernetes binaries from hack/build-kube-bins.sh. Every address is
loopback or on the bridge this package creates; teardown restores the host (HostState)."""

from syncjob_devtools.localnode.host import BRIDGE, GATEWAY, HostError, HostState
from syncjob_devtools.localnode.node import Node, NodeCluster, node_cluster

__all__ = ["BRIDGE", "GATEWAY", "HostError", "HostState", "Node", "NodeCluster", "node_cluster"]
