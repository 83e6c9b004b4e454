"""The node tier: a control plane on the Pod bridge's gateway, one real node (containerd,
kubelet, kube-proxy, kube-scheduler), the image built from the Dockerfile loaded into its
runtime, and both emulators on the gateway where Pods reach them. One of each per session;
when the session ends, the host must hold nothing the node added."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from syncjob_devtools.emulators.admin import twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlaneError
from syncjob_devtools.localnode import GATEWAY, HostError, HostState, NodeCluster, node_cluster
from tests.support.image import BuiltImage
from tests.support.kube import Cli

WORKSPACE = "factory-floor"  # examples/twinmaker.yaml


@pytest.fixture(scope="session")
def node() -> Iterator[NodeCluster]:
    before = HostState.capture()
    stack = ExitStack()
    try:
        cluster = stack.enter_context(node_cluster())
    except (HostError, ControlPlaneError) as exc:
        # Never skip: the chart is claimed to run on a kubelet, so a missing node is a failure.
        pytest.fail(f"the local node did not start: {exc}", pytrace=False)
    yield cluster
    stack.close()
    left = before.left_behind(HostState.capture())
    assert not left, f"the node's teardown left these behind: {left}"


@pytest.fixture(scope="session")
def operator_image(node: NodeCluster, built_image: BuiltImage) -> BuiltImage:
    """The image from the repository's Dockerfile, in the node's runtime under the name the
    kubelet asks for."""
    node.node.load_image(built_image.archive)
    assert built_image.reference in node.node.containerd.images()
    return built_image


@pytest.fixture(scope="session")
def node_kubectl(node: NodeCluster) -> Cli:
    return Cli("kubectl", node.plane.env())


@pytest.fixture(scope="session")
def node_helm(node: NodeCluster) -> Cli:
    return Cli("helm", node.plane.env())


@pytest.fixture(scope="session")
def pod_emulators(node: NodeCluster) -> Iterator[RunningEmulators]:
    """Both emulators on the bridge's gateway: reachable from Pods, and from nowhere else."""
    with RunningEmulators(TwinMakerConfig(transition_seconds=0.2), host=GATEWAY) as emu:
        twinmaker_client(emu.twinmaker_url).create_workspace(workspaceId=WORKSPACE)
        yield emu
