"""The upgrade path of docs/helm.md ("Upgrade"), run as written there against a real API
server: the CRDs applied server-side, then `helm upgrade`.

From 0.1.0: the chart installed by `helm install` with 0.1.0's SyncJob CRD (frozen in
tests/chart/testdata), SyncJobs of both providers Ready under a running operator; after the
two documented commands and the operator's replacement, the CRD is the current one and every
SyncJob keeps its uid, identity and remote id, stays Ready and unwritten, and neither provider
saw a create, update or delete. Only the CRD of 0.1.0 is frozen: the chart's templates are
the current ones in both releases.

From older CRDs with fields the current one lacks, however they were created (Helm 4's
server-side apply, Helm 3's create, a client-side `kubectl apply`): the documented step leaves
exactly the current CRD, in place.

Each test has a control plane of its own: it installs, replaces and deletes CRDs that the
rest of the suite shares.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncjob_devtools.apicounts import wait_for_drift_passes
from syncjob_devtools.localcluster import ControlPlane, ControlPlaneError
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import Emulators, start_operator, token_secret, truto_job, twinmaker_job
from tests.support.kube import Cli, CommandFailed, condition, wait_until

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "syncjob-operator"
CURRENT_CRD = CHART / "crds" / "syncjob.dev_syncjobs.yaml"
CRD_0_1_0 = REPO / "tests" / "chart" / "testdata" / "syncjob.dev_syncjobs-0.1.0.yaml"
CRD = "syncjobs.syncjob.dev"
# The release as docs/helm.md ("Install") installs it; the upgrade command names it.
RELEASE, RELEASE_NAMESPACE = "syncjob-operator", "syncjob-system"
IMAGE_REPOSITORY = "registry.example/platform/syncjob-operator"
APPS = "plant-a"
JOBS_PER_PROVIDER = 3
# Remote calls that write nothing (STS's AssumeRole among them); every other one is a write.
READS = ("Get", "List", "Describe", "AssumeRole")
DRIFT_PASSES_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Cluster:
    plane: ControlPlane
    kubectl: Cli
    helm: Cli
    workdir: Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    plane = ControlPlane(workdir=tmp_path / "plane")
    try:
        plane.start()
    except ControlPlaneError as exc:
        pytest.fail(f"the control plane did not start: {exc}", pytrace=False)
    try:
        yield Cluster(plane, Cli("kubectl", plane.env()), Cli("helm", plane.env()), tmp_path)
    finally:
        plane.stop()


def documented_upgrade() -> tuple[list[str], list[str]]:
    """The two commands of docs/helm.md's "Upgrade" section: the CRD step, then helm."""
    text = (REPO / "docs" / "helm.md").read_text()
    section = text.split("\n### Upgrade\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line]
    assert [c[:2] for c in commands] == [["kubectl", "apply"], ["helm", "upgrade"]], commands
    return commands[0], commands[1]


def run_documented(cluster: Cluster, command: list[str]) -> None:
    """A documented command verbatim, from the repository's root (its paths are relative)."""
    proc = subprocess.run(
        command, cwd=REPO, env=cluster.plane.env(), capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise CommandFailed(f"{shlex.join(command)} exited {proc.returncode}\n{proc.stderr}")


def crd_document(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def definition(crd: dict[str, Any]) -> dict[str, Any]:
    """What a CRD defines (group, names, scope, and per version its schema, printer columns,
    subresources and flags), from a file or as the API server serves it."""
    spec = crd["spec"]
    return {
        "group": spec["group"],
        "scope": spec["scope"],
        "names": spec["names"],
        "versions": spec["versions"],
    }


def served(kubectl: Cli) -> dict[str, Any]:
    crd: dict[str, Any] = kubectl.json("get", "crd", CRD)
    return crd


def chart_with_crd(workdir: Path, crd: dict[str, Any] | Path, version: str) -> Path:
    """A copy of the chart whose crds/ holds `crd` instead of the current SyncJob CRD, with
    `version` as its version and appVersion."""
    chart = workdir / f"chart-{version}" / CHART.name
    shutil.copytree(CHART, chart)
    target = chart / "crds" / CURRENT_CRD.name
    if isinstance(crd, Path):
        shutil.copyfile(crd, target)
    else:
        target.write_text(yaml.safe_dump(crd))
    meta = chart / "Chart.yaml"
    text = re.sub(r"(?m)^version: .*$", f"version: {version}", meta.read_text())
    meta.write_text(re.sub(r"(?m)^appVersion: .*$", f'appVersion: "{version}"', text))
    return chart


def helm_install(cluster: Cluster, chart: Path) -> None:
    """As docs/helm.md ("Install") installs the chart."""
    cluster.helm.run(
        "install",
        RELEASE,
        str(chart),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--set",
        f"image.repository={IMAGE_REPOSITORY}",
    )


def established(kubectl: Cli) -> None:
    kubectl.run("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")


# -- from older CRDs -------------------------------------------------------------------------


def older_crd() -> dict[str, Any]:
    """0.1.0's CRD changed the ways a later release may change it the other way round: a
    printer column and a spec field the current CRD lacks, a spec field it has removed, and a
    description it words differently."""
    crd = copy.deepcopy(crd_document(CRD_0_1_0))
    (version,) = crd["spec"]["versions"]
    version["additionalPrinterColumns"].append(
        {"name": "Legacy", "type": "string", "jsonPath": ".spec.legacy"}
    )
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["legacy"] = {"type": "string", "description": "A field since removed."}
    del spec["properties"]["truto"]["properties"]["baseURL"]
    spec["description"] = "An older wording."
    return crd


def create_with_helm_4(cluster: Cluster, crd: dict[str, Any]) -> None:
    helm_install(cluster, chart_with_crd(cluster.workdir, crd, "0.1.0"))


def create_like_helm_3(cluster: Cluster, crd: dict[str, Any]) -> None:
    # Helm 3 creates the CRDs of crds/ with a plain create under its own field manager.
    cluster.kubectl.run("create", "--field-manager=helm", "-f", "-", stdin=yaml.safe_dump(crd))


def apply_client_side(cluster: Cluster, crd: dict[str, Any]) -> None:
    # 0.1.0's docs applied changed CRDs with a client-side `kubectl apply -f`.
    cluster.kubectl.apply(yaml.safe_dump(crd))


@pytest.mark.parametrize(
    "create", [create_with_helm_4, create_like_helm_3, apply_client_side], ids=lambda f: f.__name__
)
def test_the_documented_step_leaves_exactly_the_current_crd(
    cluster: Cluster, create: Callable[[Cluster, dict[str, Any]], None]
) -> None:
    kubectl = cluster.kubectl
    old = older_crd()
    create(cluster, old)
    established(kubectl)
    before = served(kubectl)
    assert definition(before) == definition(old)
    assert definition(before) != definition(crd_document(CURRENT_CRD))

    crd_step, _ = documented_upgrade()
    run_documented(cluster, crd_step)

    after = served(kubectl)
    assert definition(after) == definition(crd_document(CURRENT_CRD))
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # updated in place
    assert after["status"]["storedVersions"] == ["v1alpha1"]
    established(kubectl)


# -- from 0.1.0 ------------------------------------------------------------------------------


def syncjobs(kubectl: Cli) -> dict[str, dict[str, Any]]:
    items = kubectl.json("get", "syncjobs", "-n", APPS)["items"]
    return {obj["metadata"]["name"]: obj for obj in items}


def identity(obj: dict[str, Any]) -> dict[str, Any]:
    """What must not change across the upgrade: who the SyncJob is, which remote job it owns,
    that it is Ready, and that nobody wrote it (its resourceVersion)."""
    meta = obj["metadata"]
    ready = condition(obj, "Ready") or {}
    return {
        "uid": meta["uid"],
        "resourceVersion": meta["resourceVersion"],
        "external-id": meta.get("annotations", {}).get("syncjob.dev/external-id"),
        "remote.id": obj.get("status", {}).get("remote", {}).get("id"),
        "finalizers": meta.get("finalizers"),
        "Ready": ready.get("status"),
    }


def all_ready(kubectl: Cli) -> bool:
    objs = syncjobs(kubectl).values()
    ready = [obj for obj in objs if (condition(obj, "Ready") or {}).get("status") == "True"]
    return len(ready) == 2 * JOBS_PER_PROVIDER


def remote_writes(emulators: Emulators) -> dict[str, dict[str, int]]:
    """Every remote call so far that is not a read, by emulator and operation."""
    calls = {
        "twinmaker": emulators.twinmaker_admin.calls().operations,
        "truto": emulators.truto_admin.calls().operations,
    }
    return {
        name: {op: n for op, n in ops.items() if not op.startswith(READS)}
        for name, ops in calls.items()
    }


def remote_jobs(emulators: Emulators, workspaces: list[str], integrations: list[str]) -> set[str]:
    ids = {
        job["arn"]
        for workspace in workspaces
        for job in emulators.twinmaker.list_sync_jobs(workspaceId=workspace)["syncJobSummaries"]
    }
    return ids | {job["id"] for name in integrations for job in emulators.truto_jobs(name)}


def operator_process(cluster: Cluster, emulators: Emulators, name: str) -> OperatorProcess:
    """The release's Pod, as an operator process (this control plane has no node)."""
    log_dir = cluster.workdir / name
    log_dir.mkdir()
    # No resource-progress reads: a job's first one writes status.syncProgress at a random time
    # within its period, and the test asserts that nothing writes a SyncJob across the upgrade.
    return start_operator(
        cluster.plane,
        emulators,
        log_dir,
        resync_seconds=2.0,
        poll_seconds=0.3,
        extra_args=["--sync-progress-pages=0"],
    )


def drift_passes(operator: OperatorProcess, more: int) -> None:
    deadline = time.monotonic() + DRIFT_PASSES_DEADLINE_SECONDS
    assert wait_for_drift_passes(operator, more, deadline), f"fewer than {more} drift passes"


def test_syncjobs_of_0_1_0_keep_their_identity_and_stay_ready_through_the_upgrade(
    cluster: Cluster, emulators: Emulators
) -> None:
    kubectl, helm = cluster.kubectl, cluster.helm
    crd_step, helm_step = documented_upgrade()

    # 0.1.0, installed as its docs say, with its CRD.
    helm_install(cluster, chart_with_crd(cluster.workdir, CRD_0_1_0, "0.1.0"))
    established(kubectl)
    installed = served(kubectl)
    assert definition(installed) == definition(crd_document(CRD_0_1_0))

    kubectl.run("create", "namespace", APPS)
    workspaces = [emulators.new_workspace() for _ in range(JOBS_PER_PROVIDER)]
    integrations = [f"crm-upgrade-{time.time_ns()}-{i}" for i in range(JOBS_PER_PROVIDER)]
    manifests = [token_secret()]
    manifests += [twinmaker_job(f"twin-{i}", ws) for i, ws in enumerate(workspaces)]
    manifests += [truto_job(f"truto-{i}", name) for i, name in enumerate(integrations)]
    kubectl.apply("---\n".join(manifests), "-n", APPS)

    old = operator_process(cluster, emulators, "operator-0.1.0")
    try:
        wait_until(lambda: all_ready(kubectl), timeout=120, interval=1, what="all Ready")
        drift_passes(old, 2)  # settled: kopf's last writes and Events are in
        before = {name: identity(obj) for name, obj in syncjobs(kubectl).items()}
        assert all(i["external-id"] and i["external-id"] == i["remote.id"] for i in before.values())
        writes_before = remote_writes(emulators)
        jobs_before = remote_jobs(emulators, workspaces, integrations)
        assert len(jobs_before) == 2 * JOBS_PER_PROVIDER

        # The upgrade as docs/helm.md gives it, the old operator still running for the CRDs.
        run_documented(cluster, crd_step)
        established(kubectl)
        run_documented(cluster, helm_step)
    finally:
        old.stop()  # the Deployment's Pod replaced (strategy Recreate)
    new = operator_process(cluster, emulators, "operator-new")
    try:
        drift_passes(new, 2)  # every SyncJob resumed, then two whole passes over all of them
        after = {name: identity(obj) for name, obj in syncjobs(kubectl).items()}
        writes_after = remote_writes(emulators)
        jobs_after = remote_jobs(emulators, workspaces, integrations)
    finally:
        new.stop()

    upgraded = served(kubectl)
    assert definition(upgraded) == definition(crd_document(CURRENT_CRD))
    assert upgraded["metadata"]["uid"] == installed["metadata"]["uid"]
    assert upgraded["status"]["storedVersions"] == ["v1alpha1"]
    assert after == before
    assert writes_after == writes_before
    assert jobs_after == jobs_before

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (release,) = helm.json("list", "-n", RELEASE_NAMESPACE)
    assert (release["chart"], release["revision"]) == (f"{RELEASE}-{chart['version']}", "2")
    (deployment,) = kubectl.json("get", "deployment", "-n", RELEASE_NAMESPACE)["items"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # The value set at install is kept; the tag is the new chart's appVersion.
    assert container["image"] == f"{IMAGE_REPOSITORY}:{chart['appVersion']}"
