"""The LIST that fills the SyncJob index before kopf starts: against the real API server."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from kubernetes import config

from syncjob_devtools.localcluster import ControlPlane
from syncjob_operator.kopf_edge.run import watched
from syncjob_operator.kube import KubeCalls, list_syncjobs
from tests.e2e.conftest import twinmaker_job
from tests.support.kube import Cli

ALL = ("all",)


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[KubeCalls]:
    api = config.new_client_from_config(str(control_plane.kubeconfig))
    with ThreadPoolExecutor(2) as executor:
        yield KubeCalls(api, executor)
    api.close()


@pytest.fixture
def other_namespace(kubectl: Cli, namespace: str) -> Iterator[str]:
    """A second namespace whose name starts with the first one's."""
    name = f"{namespace}-b"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def _apply(kubectl: Cli, namespace: str, name: str, shard: str) -> str:
    """Applies a SyncJob with the label shard=<shard>; returns its uid."""
    manifest = yaml.safe_load(twinmaker_job(name, f"ws-{name}"))
    manifest["metadata"]["labels"] = {"shard": shard}
    kubectl.apply(yaml.safe_dump(manifest), "-n", namespace)
    return str(kubectl.json("get", "syncjob", name, "-n", namespace)["metadata"]["uid"])


async def _pages(
    kube: KubeCalls, namespaces: Sequence[str], labels: Mapping[str, str]
) -> list[list[tuple[str, str]]]:
    return [
        [(item["metadata"]["namespace"], item["metadata"]["name"]) for item in page]
        async for page in list_syncjobs(
            kube, namespaces, labels, watched=watched(namespaces), page_size=2
        )
    ]


async def test_the_startup_list_pages_through_the_watched_namespaces_and_shard(
    crd: None, kubectl: Cli, kube: KubeCalls, namespace: str, other_namespace: str
) -> None:
    for name in ("a1", "a2", "a3"):
        _apply(kubectl, namespace, name, "a")
    _apply(kubectl, namespace, "b1", "b")
    _apply(kubectl, other_namespace, "a4", "a")
    first = [(namespace, name) for name in ("a1", "a2", "a3")]

    # Named namespaces: one LIST each, in pages of 2, with the shard's label selector.
    pages = await _pages(kube, [namespace], {"shard": "a"})
    assert len(pages) >= 2  # paged: 3 objects, 2 a page
    assert sorted(item for page in pages for item in page) == first
    both = await _pages(kube, [namespace, other_namespace], {"shard": "a"})
    assert sorted(item for page in both for item in page) == [*first, (other_namespace, "a4")]

    # A pattern: one cluster-wide LIST, kept to the namespaces kopf matches.
    pattern = await _pages(kube, [f"{namespace}*, !{other_namespace}"], {"shard": "a"})
    assert sorted(item for page in pattern for item in page) == first
