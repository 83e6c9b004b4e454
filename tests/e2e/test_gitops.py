"""GitOps for real: Argo CD's application controller and repo-server (built from the Go module
proxy, run as Argo CD runs itself locally) sync SyncJobs from a git repository on disk into a
control plane of their own, and the operator makes them Ready against the emulators.

The module starts from an empty cluster: no SyncJob CRD until Argo CD applies it from git. Its
tests share one Application and run in file order; each leaves it Synced and Healthy, except the
last, which prunes.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from syncjob_devtools.localargocd import LocalArgoCD
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import CRDS_DIR, OperatorProcess
from tests.chart.support import CHART
from tests.e2e.conftest import ROLE, TRUTO_TOKEN, Emulators
from tests.support.argocd import argocd_health, capture, documented_configmap
from tests.support.gitops import GitRepo, application, resource_status
from tests.support.kube import Cli, condition, wait_until

APP = "syncjobs"
NAMESPACE = "team-data"
# The operator's resync period here: the Synced test watches more than two of them.
RESYNC_SECONDS = 2.0


@dataclass
class GitOps:
    kubectl: Cli
    argocd: LocalArgoCD
    operator: OperatorProcess
    emulators: Emulators
    repo: GitRepo
    workspace: str
    integration: str

    def app(self) -> dict[str, Any]:
        found: dict[str, Any] = self.kubectl.json("get", "application", APP, "-n", "argocd")
        return found

    def syncjob(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.kubectl.json("get", "syncjob", name, "-n", NAMESPACE)
        return found

    def wait_app(
        self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            app = self.app()
            return app if check(app) else None

        try:
            found: dict[str, Any] = wait_until(matches, timeout=timeout, what=what)
        except AssertionError as exc:
            status = self.app().get("status", {})
            state = {k: status.get(k) for k in ("sync", "health", "operationState", "conditions")}
            logs = self.argocd.log_tails(5)
            raise AssertionError(f"{exc}\nApplication: {state}\n{logs}") from None
        return found

    def wait_synced_healthy(self, revision: str) -> dict[str, Any]:
        """Synced and Healthy at `revision`, with its sync operation over: the history entry
        of a sync is written when the operation ends, which can be after the comparison is
        Synced (later waves wait for health)."""
        return self.wait_app(
            f"Synced + Healthy at {revision[:8]}, operation done",
            lambda app: (
                _sync(app) == ("Synced", revision)
                and _health(app)[0] == "Healthy"
                and _operation_done(app, revision)
            ),
        )

    def publish(self, message: str, **overrides: Any) -> str:
        """Writes the repository's manifests (with `overrides`) and commits them."""
        for path, docs in manifests(self.workspace, self.integration, **overrides).items():
            self.repo.write(path, docs)
        return self.repo.commit(message)


def _sync(app: dict[str, Any]) -> tuple[str | None, str | None]:
    sync = app.get("status", {}).get("sync", {})
    return sync.get("status"), sync.get("revision")


def _operation_done(app: dict[str, Any], revision: str) -> bool:
    state = app.get("status", {}).get("operationState") or {}
    synced = (state.get("syncResult") or {}).get("revision")
    return state.get("phase") == "Succeeded" and synced == revision


def _health(app: dict[str, Any]) -> tuple[str | None, str | None]:
    health = app.get("status", {}).get("health", {})
    return health.get("status"), health.get("message")


def manifests(
    workspace: str,
    integration: str,
    *,
    token: str = TRUTO_TOKEN,
    tags: dict[str, str] | None = None,
    resources: list[str] | None = None,
    with_twinmaker: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """The repository's content: the CRDs in wave -10 (as shipped), a Secret, and SyncJobs in
    wave 1 (as in examples/)."""
    wave = {"argocd.argoproj.io/sync-wave": "1"}
    truto = {
        "apiVersion": "syncjob.dev/v1alpha1",
        "kind": "SyncJob",
        "metadata": {"name": "crm-contacts", "annotations": wave},
        "spec": {
            "truto": {
                "integrationName": integration,
                "tokenSecretRef": {"name": "truto-token", "key": "token"},
                "argsSchema": {"type": "object", "properties": {"since": {"type": "string"}}},
                "resources": [
                    {"resource": r, "method": "list"} for r in resources or ["crm/contacts"]
                ],
            }
        },
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "truto-token"},
        "stringData": {"token": token},
    }
    files: dict[str, list[dict[str, Any]]] = {
        f"crds/{crd.name}": list(yaml.safe_load_all(crd.read_text()))
        for crd in sorted(CRDS_DIR.glob("*.yaml"))
    }
    files["apps/truto.yaml"] = [secret, truto]
    files["apps/twinmaker.yaml"] = []
    if with_twinmaker:
        files["apps/twinmaker.yaml"] = [
            {
                "apiVersion": "syncjob.dev/v1alpha1",
                "kind": "SyncJob",
                "metadata": {"name": "factory-sitewise", "annotations": wave},
                "spec": {
                    "awsIoTTwinMaker": {
                        "region": "us-east-1",
                        "workspaceId": workspace,
                        "syncSource": "SITEWISE",
                        "syncRole": ROLE,
                        "tags": tags or {"team": "platform"},
                    }
                },
            }
        ]
    return files


@pytest.fixture(scope="module")
def gitops(emulators: Emulators, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitOps]:
    work = tmp_path_factory.mktemp("gitops")
    with ControlPlane(workdir=work / "plane") as plane:
        kubectl = Cli("kubectl", plane.env())
        # The operator first, as a cluster whose operator is installed before any SyncJob CRD:
        # it waits, not ready, until the API server serves SyncJobs.
        operator = OperatorProcess(
            kubeconfig=plane.kubeconfig,
            log_path=work / "operator.log",
            twinmaker_url=emulators.running.twinmaker_url,
            truto_url=emulators.running.truto_url,
            resync_seconds=RESYNC_SECONDS,
            poll_seconds=0.3,
            # A blocked deletion is re-tried this often once the cause is fixed.
            extra_args=["--terminal-recheck-seconds=3"],
        )
        operator.start(wait_ready=False)
        argocd = LocalArgoCD(plane, work / "argocd")
        try:
            argocd.start()
            # Registered exactly as docs/argocd.md tells users to.
            kubectl.run(
                "apply", "--server-side", "-n", "argocd", "-f", "-", stdin=documented_configmap()
            )
            repo = GitRepo(work / "repo").init()
            yield GitOps(
                kubectl,
                argocd,
                operator,
                emulators,
                repo,
                workspace=emulators.new_workspace(),
                integration=f"crm-gitops-{time.time_ns()}",
            )
        finally:
            argocd.stop()
            operator.stop()


def test_application_from_an_empty_cluster_is_synced_and_healthy_once_jobs_are_ready(
    gitops: GitOps,
) -> None:
    assert not gitops.kubectl.exists("crd", "syncjobs.syncjob.dev")
    assert not gitops.operator.is_ready()  # waiting for the API server to serve SyncJobs
    revision = gitops.publish("SyncJobs for team-data")
    gitops.kubectl.apply(
        yaml.safe_dump(application(APP, gitops.repo, NAMESPACE, directory={"recurse": True}))
    )

    app = gitops.wait_synced_healthy(revision)

    for name, state in (("crm-contacts", "PRESENT"), ("factory-sitewise", "ACTIVE")):
        job = gitops.syncjob(name)
        assert job["status"]["remote"]["state"] == state
        assert resource_status(app, "SyncJob", name)["health"]["status"] == "Healthy"
        # What the controller showed is what the documented check says of the live object.
        assert argocd_health(job)["status"] == "Healthy"
        capture(f"{name}-ready", job)
    # Waves: the CRD was applied and established before any SyncJob was created.
    crd = gitops.kubectl.json("get", "crd", "syncjobs.syncjob.dev")
    established = condition(crd, "Established")
    assert established is not None
    assert established["status"] == "True"
    for name in ("crm-contacts", "factory-sitewise"):
        created = gitops.syncjob(name)["metadata"]["creationTimestamp"]
        assert established["lastTransitionTime"] <= created
    results = app["status"]["operationState"]["syncResult"]["resources"]
    assert all(r["status"] == "Synced" for r in results), results


def test_a_commit_changing_tags_and_resources_changes_the_remote_jobs(gitops: GitOps) -> None:
    revision = gitops.publish(
        "more resources, new tags",
        tags={"team": "platform", "cost-center": "42"},
        resources=["crm/contacts", "crm/companies"],
    )

    gitops.wait_synced_healthy(revision)

    def remote_changed() -> bool:
        twinmaker = gitops.emulators.twinmaker
        arn = twinmaker.get_sync_job(workspaceId=gitops.workspace, syncSource="SITEWISE")["arn"]
        tags = twinmaker.list_tags_for_resource(resourceARN=arn)["tags"]
        (job,) = gitops.emulators.truto_jobs(gitops.integration)
        return tags.get("cost-center") == "42" and [r["resource"] for r in job["resources"]] == [
            "crm/contacts",
            "crm/companies",
        ]

    wait_until(remote_changed, timeout=60, what="remote jobs updated from git")
    # One job each still: an update, not a replacement.
    assert len(gitops.emulators.truto_jobs(gitops.integration)) == 1


def test_terminal_error_degrades_the_application_until_git_fixes_it(gitops: GitOps) -> None:
    broken = gitops.publish("rotate the token (wrong value)", token="not-the-token")

    app = gitops.wait_app(
        "Degraded",
        lambda app: _sync(app) == ("Synced", broken) and _health(app)[0] == "Degraded",
    )
    job = gitops.syncjob("crm-contacts")
    terminal = condition(job, "Terminal")
    assert terminal is not None, job["status"]
    assert terminal["status"] == "True"
    shown = resource_status(app, "SyncJob", "crm-contacts")["health"]
    assert shown["status"] == "Degraded"
    # The operator's own message, as Argo CD shows it.
    synced = condition(job, "Synced")
    assert synced is not None
    assert synced["message"] in shown["message"], (shown, synced)
    assert argocd_health(job) == {"status": "Degraded", "message": shown["message"]}
    capture("crm-contacts-terminal", job)

    fixed = gitops.publish("rotate the token (right value)")

    gitops.wait_synced_healthy(fixed)
    assert condition(gitops.syncjob("crm-contacts"), "Terminal") is None


def test_operator_writes_never_make_the_application_out_of_sync(gitops: GitOps) -> None:
    """Status, annotation and finalizer writes by the operator, over more than two resync
    periods: the remote jobs vanish out of band, the operator notices, recreates them and says
    so in status and its identity annotation, while Argo CD watches every write."""
    app = gitops.app()
    history = len(app["status"].get("history", []))
    before = {n: gitops.syncjob(n) for n in ("crm-contacts", "factory-sitewise")}
    gitops.emulators.twinmaker_admin.remove_sync_job(gitops.workspace)
    (truto_job,) = gitops.emulators.truto_jobs(gitops.integration)
    gitops.emulators.truto.delete(f"/sync-job/{truto_job['id']}").raise_for_status()

    seen: set[tuple[str | None, str | None]] = set()
    deadline = time.monotonic() + 3 * RESYNC_SECONDS + 10
    while time.monotonic() < deadline:
        app = gitops.app()
        seen.add(_sync(app))
        time.sleep(0.2)

    assert {status for status, _ in seen} == {"Synced"}, seen
    assert len(gitops.app()["status"].get("history", [])) == history  # no sync was needed
    after = {n: gitops.syncjob(n) for n in before}
    for name, job in after.items():
        assert job["metadata"]["resourceVersion"] != before[name]["metadata"]["resourceVersion"]
        assert "syncjob.dev/finalizer" in job["metadata"]["finalizers"]
    # A new Truto job has a new id (a TwinMaker job's ARN is its workspace and source).
    old_id = before["crm-contacts"]["status"]["remote"]["id"]
    assert after["crm-contacts"]["status"]["remote"]["id"] != old_id
    gitops.wait_app("Healthy again", lambda app: _health(app)[0] == "Healthy")


def test_a_blocked_deletion_shows_pending_deletion_and_a_warning_event(gitops: GitOps) -> None:
    """Argo CD answers 'Progressing: Pending deletion' for any object being deleted before it
    runs a health check: the reason a deletion is blocked reaches users as the SyncJob's
    Warning Event (Argo CD's resource events) and its conditions."""
    gitops.emulators.twinmaker_admin.inject_fault(
        "DeleteSyncJob",
        status=403,
        code="AccessDeniedException",
        message="not authorized to perform iottwinmaker:DeleteSyncJob",
        next_n=1000,
    )
    try:
        revision = gitops.publish("retire the TwinMaker job", with_twinmaker=False)

        def blocked(app: dict[str, Any]) -> bool:
            if _sync(app)[1] != revision:
                return False
            job = gitops.syncjob("factory-sitewise")
            terminal = condition(job, "Terminal")
            return terminal is not None and terminal["status"] == "True"

        gitops.wait_app("deletion blocked", blocked)
        job = gitops.syncjob("factory-sitewise")
        assert job["metadata"]["deletionTimestamp"]
        assert argocd_health(job) == {"status": "Progressing", "message": "Pending deletion"}
        capture("factory-sitewise-deletion-blocked", job)
        events = gitops.kubectl.json(
            "get",
            "events",
            "-n",
            NAMESPACE,
            "--field-selector",
            "involvedObject.name=factory-sitewise,type=Warning",
        )["items"]
        assert any("not authorized" in e["message"] for e in events), events
        # The Application's health follows on its next refresh.
        gitops.wait_app("Progressing", lambda app: _health(app)[0] == "Progressing", timeout=60)
    finally:
        gitops.emulators.twinmaker_admin.clear_faults()
    _wait_pruned(gitops, "factory-sitewise", revision)
    remaining = gitops.emulators.twinmaker.list_sync_jobs(workspaceId=gitops.workspace)
    assert remaining["syncJobSummaries"] == []


def test_removing_a_syncjob_from_git_prunes_it_and_deletes_the_remote_job(
    gitops: GitOps,
) -> None:
    gitops.repo.remove("apps/truto.yaml")
    revision = gitops.repo.commit("retire the CRM sync")

    _wait_pruned(gitops, "crm-contacts", revision)
    assert gitops.emulators.truto_jobs(gitops.integration) == []


def _wait_pruned(gitops: GitOps, name: str, revision: str) -> None:
    wait_until(
        lambda: not gitops.kubectl.exists("syncjob", name, "-n", NAMESPACE),
        timeout=90,
        what=f"SyncJob {name} pruned and its finalizer done",
    )
    gitops.wait_synced_healthy(revision)


def test_the_chart_installs_through_a_helm_source_application(gitops: GitOps) -> None:
    """The operator's chart from git as a Helm source. The control plane has no kubelet, so
    the Deployment never gets a pod: the Application is Synced, with the Deployment (and so the
    Application) Progressing; everything else the chart renders is applied and Healthy."""
    # The SyncJobs' Application goes first (without cascade: no resources finalizer), so that
    # the chart's Application takes over the CRDs it tracked, as a team moving them would.
    gitops.kubectl.run("delete", "application", APP, "-n", "argocd")
    shutil.copytree(CHART, gitops.repo.path / "charts" / CHART.name)
    revision = gitops.repo.commit("the operator's chart")
    chart_app = application(
        "syncjob-operator",
        gitops.repo,
        "syncjob-system",
        path=f"charts/{CHART.name}",
        helm={"valuesObject": {"watchNamespaces": [NAMESPACE]}},
    )
    gitops.kubectl.apply(yaml.safe_dump(chart_app))

    def installed() -> dict[str, Any] | None:
        app: dict[str, Any] = gitops.kubectl.json(
            "get", "application", "syncjob-operator", "-n", "argocd"
        )
        return app if _sync(app) == ("Synced", revision) else None

    app = wait_until(installed, timeout=120, what="chart Application Synced")
    kinds = {(r["kind"], r["name"]) for r in app["status"]["resources"]}
    assert ("CustomResourceDefinition", "syncjobs.syncjob.dev") in kinds
    assert ("Deployment", "syncjob-operator") in kinds
    for resource in app["status"]["resources"]:
        expected = "Progressing" if resource["kind"] == "Deployment" else "Healthy"
        if "health" in resource:
            assert resource["health"]["status"] == expected, resource
    deployment = gitops.kubectl.json(
        "get", "deployment", "syncjob-operator", "-n", "syncjob-system"
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(NAMESPACE in arg for arg in args), args
