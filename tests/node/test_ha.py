"""High availability and scale-out as the chart offers them, run by the kubelet: two replicas
with peering (priority seniority), exactly one of which works while the other stands by and
takes over when the worker is SIGKILLed; and two releases sharding SyncJobs by label, each
SyncJob handled by exactly one of them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.localnode import NodeCluster
from tests.node.fleet import Fleet
from tests.node.release import (
    chart_values,
    install,
    kill_container,
    operator_pods,
    pod_metric,
    running,
    uninstall,
)
from tests.support.image import BuiltImage
from tests.support.kube import Cli, wait_until

pytestmark = pytest.mark.cluster

HA, HA_RELEASE, APPS = "syncjob-ha", "ha", "ha-apps"
# The chart's peering.lifetimeSeconds here: the longest a standby waits for a dead worker.
LIFETIME = 15
RESUMING = "Resuming operations after the pause"
PAUSING = "Pausing operations in favour of"


def _log(kubectl: Cli, pod: dict[str, Any]) -> str:
    return kubectl.run("logs", "-n", HA, pod["metadata"]["name"]).stdout


def _objects_in_log(log: str) -> set[str]:
    """SyncJobs a log's JSON records name: what that operator worked on."""
    names = set()
    for line in log.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if isinstance(record.get("object"), dict):
            names.add(str(record["object"].get("name")))
    return names


def _peers(kubectl: Cli) -> dict[str, int]:
    """Live peers of the release's peering by priority, as kopf records them (by Pod name)."""
    peering = kubectl.json("get", "clusterkopfpeering", f"{HA_RELEASE}-syncjob-operator")
    return {pod: int(peer["priority"]) for pod, peer in peering.get("status", {}).items()}


def _working(log: str) -> bool:
    """Whether kopf's last word on peering in `log` is that it resumed. Every replica starts
    paused; a replica started at the same moment as an older one can resume before the older
    one's first keep-alive arrives, and pauses once it does."""
    return log.rfind(RESUMING) > log.rfind(PAUSING)


def _worker_and_standby(kubectl: Cli) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two running replicas, told apart by kopf's peering record (the older one has the
    higher seniority priority) and checked against their logs."""
    pods = running(operator_pods(kubectl, HA, HA_RELEASE))
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    peers = _peers(kubectl)
    worker, standby = sorted(pods, key=lambda p: peers[p["metadata"]["name"]], reverse=True)
    assert _working(_log(kubectl, worker))
    assert not _working(_log(kubectl, standby))
    return worker, standby


# Function scope: the unsharded HA release must be gone before the shards start.
@pytest.fixture
def ha_release(
    node_kubectl: Cli, node_helm: Cli, operator_image: BuiltImage, pod_emulators: RunningEmulators
) -> Iterator[None]:
    values = chart_values(pod_emulators, operator_image)
    values["replicaCount"] = 2
    values["peering"] = {"enabled": True, "priority": "seniority", "lifetimeSeconds": LIFETIME}
    install(node_helm, HA_RELEASE, HA, values)
    node_kubectl.run("create", "namespace", APPS)
    yield
    node_kubectl.run("delete", "syncjobs", "--all", "-n", APPS, "--timeout=180s")
    uninstall(node_helm, node_kubectl, HA_RELEASE, HA)
    node_kubectl.run("delete", "namespace", APPS, HA, "--wait=false")


def test_two_replicas_one_works_the_standby_takes_over(
    ha_release: None, node: NodeCluster, node_kubectl: Cli, pod_emulators: RunningEmulators
) -> None:
    wait_until(
        lambda: (
            len(running(operator_pods(node_kubectl, HA, HA_RELEASE))) == 2
            and len(_peers(node_kubectl)) == 2
        ),
        timeout=60,
        what="two replicas in the peering",
    )
    worker, standby = _worker_and_standby(node_kubectl)
    before = Fleet(node_kubectl, pod_emulators, APPS, "before", truto=10, twinmaker=10)
    before.apply()
    before.wait_ready(timeout=120)
    assert not _objects_in_log(_log(node_kubectl, standby)) & {
        i["metadata"]["name"] for i in before.syncjobs()
    }, "the standby worked on SyncJobs while the worker was alive"

    killed_at = time.monotonic()
    kill_container(node, worker)
    during = Fleet(node_kubectl, pod_emulators, APPS, "during", truto=10, twinmaker=10)
    during.apply()
    wait_until(
        lambda: _working(_log(node_kubectl, standby)),
        timeout=LIFETIME + 30,
        what="the standby to resume",
    )
    takeover = time.monotonic() - killed_at
    print(f"standby took over {takeover:.1f}s after the worker's SIGKILL")
    # The documented bound: the peering lifetime, plus the kubelet's restart of the container
    # (whose new, younger process joins as the standby at once).
    assert takeover <= LIFETIME + 10
    during.wait_ready(timeout=180)
    assert before.ownership_problems() == []
    assert during.ownership_problems() == []
    # The restarted replica is younger than the new worker, so it stands by.
    new_worker, new_standby = _worker_and_standby(node_kubectl)
    assert new_worker["metadata"]["name"] == standby["metadata"]["name"]
    assert new_standby["metadata"]["name"] == worker["metadata"]["name"]


SHARDS = {"blue": 12, "green": 8}  # SyncJobs per shard (half Truto, half TwinMaker)
SHARD_NS, SHARD_APPS = "syncjob-shards", "shard-apps"


@pytest.fixture
def shard_releases(
    node_kubectl: Cli, node_helm: Cli, operator_image: BuiltImage, pod_emulators: RunningEmulators
) -> Iterator[None]:
    for shard in SHARDS:
        values = chart_values(pod_emulators, operator_image)
        values["selector"] = {"syncjob.dev/shard": shard}
        install(node_helm, shard, SHARD_NS, values)
    node_kubectl.run("create", "namespace", SHARD_APPS)
    try:
        yield
    finally:
        node_kubectl.run("delete", "syncjobs", "--all", "-n", SHARD_APPS, "--timeout=180s")
        for shard in SHARDS:
            uninstall(node_helm, node_kubectl, shard, SHARD_NS)
        node_kubectl.run("delete", "namespace", SHARD_APPS, SHARD_NS, "--wait=false")


def _held(kubectl: Cli) -> list[str]:
    """The operators' holds on the shards' Secrets."""
    return [
        f"{secret['metadata']['name']}: {f}"
        for secret in kubectl.json("get", "secrets", "-n", SHARD_APPS)["items"]
        for f in secret["metadata"].get("finalizers", [])
        if f.startswith("syncjob.dev/")
    ]


def test_each_syncjob_is_reconciled_by_exactly_one_shard(
    shard_releases: None, node_kubectl: Cli, pod_emulators: RunningEmulators
) -> None:
    fleets = {
        shard: Fleet(
            node_kubectl,
            pod_emulators,
            SHARD_APPS,
            shard,
            truto=n // 2,
            twinmaker=n - n // 2,
            labels={"syncjob.dev/shard": shard},
        )
        for shard, n in SHARDS.items()
    }
    for fleet in fleets.values():
        fleet.apply()
    for shard, fleet in fleets.items():
        fleet.wait_ready(timeout=180)
        assert fleet.ownership_problems() == []
        (pod,) = operator_pods(node_kubectl, SHARD_NS, shard)
        # Each shard's operator holds exactly its own SyncJobs, and logged no other's.
        assert pod_metric(pod, "syncjob_objects") == SHARDS[shard]
        others = {
            i["metadata"]["name"] for s, f in fleets.items() if s != shard for i in f.syncjobs()
        }
        log = node_kubectl.run("logs", "-n", SHARD_NS, pod["metadata"]["name"]).stdout
        assert not _objects_in_log(log) & others
    # Deleted together: each shard deletes its own SyncJobs' remote jobs (no shard releases
    # another's finalizer) and releases its own hold on the Secret its SyncJobs shared.
    node_kubectl.run("delete", "syncjobs", "--all", "-n", SHARD_APPS, "--timeout=180s")
    for shard, fleet in fleets.items():
        assert fleet.remote_ids() == [], f"{shard}: remote jobs left after deletion"
    try:
        wait_until(lambda: not _held(node_kubectl), timeout=60, what="the Secret holds released")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {_held(node_kubectl)}") from None
