"""The chart installed into the real control plane, and the operator run the way that install
configures it: the Deployment's own args and env, the provider defaults from the release's
Secret, and a token of the release's ServiceAccount, so that every API call goes through the
chart's RBAC. The control plane has no kubelet, so the Deployment's pod never runs; the
operator runs as a local process (OperatorProcess) against the control plane and the emulators.

The tests of this module share one cluster-wide release (fixture `cluster_release`) and run in
file order: the last one upgrades and uninstalls it.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from syncjob_operator.kube import secret_hold
from tests.chart.support import CHART, REPO, SECRET_FINALIZER, secret_policy_name, value_args
from tests.support.argocd import argocd_health
from tests.support.kube import Cli, wait_until
from tests.support.secrets import leaks

pytestmark = pytest.mark.cluster

EXAMPLES = REPO / "examples"
SHARD = {"syncjob.dev/shard": "a"}
WORKSPACE = "factory-floor"  # examples/twinmaker.yaml


def _example_secret_values() -> dict[str, str]:
    """The secret values of the examples' Secrets: none may ever show outside a Secret."""
    values = {}
    for path in EXAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Secret":
                values.update(doc["stringData"])
    return {k: v for k, v in values.items() if k in ("token", "AWS_SECRET_ACCESS_KEY")}


SECRET_VALUES = _example_secret_values()


@dataclass
class Release:
    name: str
    namespace: str
    service_account: str
    apps: str  # where its SyncJobs live
    operator: OperatorProcess
    log: Path


@pytest.fixture(scope="module")
def emulators() -> Iterator[RunningEmulators]:
    with RunningEmulators(TwinMakerConfig(transition_seconds=0.2)) as emu:
        twinmaker_client(emu.twinmaker_url).create_workspace(workspaceId=WORKSPACE)
        yield emu


def _provider_defaults(emu: RunningEmulators) -> dict[str, Any]:
    # The operator finds the emulators through the chart's provider-defaults Secret.
    return {
        "providerDefaults": {
            "env": {
                "AWS_REGION": "us-east-1",
                "SYNCJOB_TWINMAKER_ENDPOINT_URL": emu.twinmaker_url,
                "SYNCJOB_TRUTO_BASE_URL": emu.truto_url,
            }
        },
        "operator": {"pollSeconds": 0.5},
    }


def _service_account_kubeconfig(
    kubectl: Cli, plane: ControlPlane, namespace: str, account: str, path: Path
) -> Path:
    token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {"name": "sa", "context": {"cluster": cluster["name"], "user": account}}
                ],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


def _operator_as_installed(
    kubectl: Cli,
    plane: ControlPlane,
    namespace: str,
    release: str,
    workdir: Path,
    pod_name: str,
) -> OperatorProcess:
    """An OperatorProcess with the installed Deployment's args and env, logged in as its
    ServiceAccount. Only the listen addresses differ: loopback ports of the test's choosing."""
    (deployment,) = kubectl.json(
        "get", "deployment", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}"
    )["items"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "run"
    args = [
        a for a in container["args"][1:] if not a.startswith(("--metrics-address", "--liveness"))
    ]
    env = {"POD_ID": pod_name}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    for source in container.get("envFrom", []):
        secret = kubectl.json("get", "secret", source["secretRef"]["name"], "-n", namespace)
        env |= {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    kubeconfig = _service_account_kubeconfig(
        kubectl, plane, namespace, pod["serviceAccountName"], workdir / f"{release}.kubeconfig"
    )
    return OperatorProcess(
        kubeconfig=kubeconfig,
        log_path=workdir / f"{release}.log",
        extra_args=args,
        extra_env=env,
    )


def _install(helm: Cli, release: str, namespace: str, values: dict[str, Any]) -> str:
    """helm install; returns its output (with the NOTES)."""
    return helm.run(
        "install", release, str(CHART), "--namespace", namespace, *value_args(values)
    ).stdout


def _apply_examples(kubectl: Cli, namespace: str, labels: dict[str, str]) -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            if doc["kind"] == "SyncJob":
                doc["metadata"].setdefault("labels", {}).update(labels)
        kubectl.apply(yaml.safe_dump_all(docs), "-n", namespace)


def _delete_syncjobs(kubectl: Cli, namespace: str) -> None:
    """Deletes every SyncJob of `namespace` and waits: the operator must still be running to
    remove the remote jobs and the finalizers."""
    kubectl.run("delete", "syncjobs", "--all", "-n", namespace, "--timeout=90s")


def _can(kubectl: Cli, subject: str, *args: str) -> bool:
    proc = kubectl.run("auth", "can-i", *args, f"--as={subject}", check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stdout + proc.stderr
    return answer == "yes"


def _log_lines(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return records


@pytest.fixture(scope="module")
def cluster_release(
    kubectl: Cli,
    helm: Cli,
    control_plane: ControlPlane,
    emulators: RunningEmulators,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    namespace, apps, name = f"syncjob-system-{suffix}", f"plant-{suffix}", f"sj-{suffix}"
    for ns in (namespace, apps):
        kubectl.run("create", "namespace", ns)
    # Cluster-wide RBAC, sharded by label: only SyncJobs labelled shard=a are its own.
    _install(helm, name, namespace, {"selector": SHARD, **_provider_defaults(emulators)})
    workdir = tmp_path_factory.mktemp("cluster-release")
    operator = _operator_as_installed(kubectl, control_plane, namespace, name, workdir, "op-a")
    release = Release(
        name, namespace, f"{name}-syncjob-operator", apps, operator, workdir / f"{name}.log"
    )
    try:
        operator.start()
        _apply_examples(kubectl, apps, SHARD)
        kubectl.run(
            "wait", "--for=condition=Ready", "syncjob", "--all", "-n", apps, "--timeout=90s"
        )
        yield release
    except BaseException:
        print(f"--- operator log:\n{operator.log_tail(80)}")
        raise
    finally:
        syncjobs = kubectl.run("get", "syncjobs", "-n", apps, "-o", "name", check=False).stdout
        if syncjobs.strip():
            _delete_syncjobs(kubectl, apps)
        operator.stop()
        if helm.run("status", name, "-n", namespace, check=False).returncode == 0:
            helm.run("uninstall", name, "-n", namespace)
        for ns in (namespace, apps):
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def test_install_creates_crds_rbac_and_workload(kubectl: Cli, cluster_release: Release) -> None:
    ns, fullname = cluster_release.namespace, cluster_release.service_account
    for crd in ("syncjobs.syncjob.dev", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"):
        assert kubectl.exists("crd", crd), crd
    for kind in ("serviceaccount", "deployment", "service", "networkpolicy"):
        assert kubectl.exists(
            kind, fullname if kind != "service" else f"{fullname}-metrics", "-n", ns
        )
    assert kubectl.exists("secret", f"{fullname}-provider-defaults", "-n", ns)
    for kind in ("clusterrole", "clusterrolebinding"):
        assert kubectl.exists(kind, fullname)
        assert kubectl.exists(kind, f"{fullname}-crd-watch")
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        assert kubectl.exists(kind, secret_policy_name(fullname, ns))
    account = kubectl.json("get", "serviceaccount", fullname, "-n", ns)
    assert account["automountServiceAccountToken"] is False
    deployment = kubectl.json("get", "deployment", fullname, "-n", ns)
    assert (
        "--selector=syncjob.dev/shard=a"
        in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )


def test_service_account_can_do_what_it_needs_and_no_more(
    kubectl: Cli, helm: Cli, cluster_release: Release
) -> None:
    who = f"system:serviceaccount:{cluster_release.namespace}:{cluster_release.service_account}"
    apps = cluster_release.apps
    needed = [
        *[(verb, "syncjobs.syncjob.dev", "-A") for verb in ("list", "watch")],
        *[(verb, "syncjobs.syncjob.dev", "-n", apps) for verb in ("get", "patch")],
        ("patch", "syncjobs.syncjob.dev", "--subresource=status", "-n", apps),
        # Secrets: read by name; kopf watches the labelled ones cluster-wide; patched only to
        # add/remove the finalizer and label (the admission policy: test_secret_protection.py).
        *[(verb, "secrets", "-n", apps) for verb in ("get", "list", "watch", "patch")],
        *[(verb, "secrets", "-n", "default") for verb in ("get", "patch")],  # any namespace
        *[(verb, "secrets", "-A") for verb in ("list", "watch")],
        ("create", "events", "-n", apps),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ]
    for args in needed:
        assert _can(kubectl, who, *args), f"cannot {args}"
    refused = [
        ("create", "secrets", "-n", apps),
        ("update", "secrets", "-n", apps),
        ("delete", "secrets", "-n", apps),
        ("deletecollection", "secrets", "-n", apps),
        ("update", "secrets", "-n", "default"),
        ("delete", "secrets", "-n", "default"),
        ("create", "syncjobs.syncjob.dev", "-n", apps),
        ("update", "syncjobs.syncjob.dev", "-n", apps),
        ("delete", "syncjobs.syncjob.dev", "-n", apps),
        ("patch", "events", "-n", apps),
        ("list", "events", "-n", apps),
        ("get", "configmaps", "-n", apps),
        ("create", "pods", "-n", apps),
        ("list", "namespaces"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "clusterkopfpeerings.kopf.dev"),  # peering is off in this release
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts", "-A"),
        ("*", "*", "-A"),
    ]
    for args in refused:
        assert not _can(kubectl, who, *args), f"can {args}"
    # No wildcard anywhere in what the release installed.
    manifest = helm.run(
        "get", "manifest", cluster_release.name, "-n", cluster_release.namespace
    ).stdout
    rules = [
        rule
        for doc in yaml.safe_load_all(manifest)
        if doc and doc["kind"] in ("Role", "ClusterRole")
        for rule in doc["rules"]
    ]
    assert rules
    for rule in rules:
        assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]], rule


def test_syncjobs_become_ready_and_argo_cd_sees_them_healthy(
    kubectl: Cli, cluster_release: Release
) -> None:
    jobs = {
        j["metadata"]["name"]: j
        for j in kubectl.json("get", "syncjobs", "-n", cluster_release.apps)["items"]
    }
    assert set(jobs) == {"crm-contacts", "factory-sitewise"}
    assert jobs["crm-contacts"]["status"]["remote"]["state"] == "PRESENT"
    assert jobs["factory-sitewise"]["status"]["remote"]["state"] == "ACTIVE"
    for job in jobs.values():
        assert "syncjob.dev/finalizer" in job["metadata"]["finalizers"]
        assert job["status"]["observedGeneration"] == job["metadata"]["generation"]
        assert argocd_health(job)["status"] == "Healthy"
    # The operator, under the release's RBAC and admission policy, protected their Secrets.
    # This release is a shard: it holds the Secrets with its own finalizer and label.
    hold = secret_hold(SHARD)
    assert hold.startswith(f"{SECRET_FINALIZER}-")
    for secret in ("truto-token", "twinmaker-credentials"):

        def protected(secret: str = secret) -> bool:
            meta = kubectl.json("get", "secret", secret, "-n", cluster_release.apps)["metadata"]
            return hold in meta.get("finalizers", []) and (
                meta.get("labels", {}).get(hold) == "true"
            )

        wait_until(protected, timeout=30, what=f"Secret {secret} protected by the operator")


def test_metrics_after_reconcile(cluster_release: Release) -> None:
    families = {
        f.name: f for f in text_string_to_metric_families(cluster_release.operator.metrics())
    }
    labels = {
        "syncjob_reconcile": {"provider", "kind", "outcome"},
        "syncjob_reconcile_duration_seconds": {"provider", "kind"},
        "syncjob_remote_calls": {"provider", "operation", "result"},
        "syncjob_retries": {"provider", "code"},
        "syncjob_terminal_errors": {"provider", "code"},
        "syncjob_objects": {"provider", "state"},
    }
    for name, expected in labels.items():
        assert name in families, f"{name} missing; have {sorted(families)}"
        for sample in families[name].samples:
            assert expected <= set(sample.labels), (name, sample)

    def total(name: str, **match: str) -> float:
        return sum(
            s.value
            for s in families[name].samples
            if s.name == f"{name}_total" and match.items() <= s.labels.items()
        )

    for provider in ("Truto", "AWSIoTTwinMaker"):
        assert total("syncjob_reconcile", provider=provider, kind="change") > 0, provider
        assert total("syncjob_remote_calls", provider=provider, result="ok") > 0, provider
    objects = {
        (s.labels["provider"], s.labels["state"]): s.value
        for s in families["syncjob_objects"].samples
    }
    assert objects == {("AWSIoTTwinMaker", "ACTIVE"): 1, ("Truto", "PRESENT"): 1}
    durations = [
        s
        for s in families["syncjob_reconcile_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert sum(s.value for s in durations) > 0


def test_json_logs_name_the_object(cluster_release: Release) -> None:
    records = _log_lines(cluster_release.log)
    names = {"crm-contacts", "factory-sitewise"}
    about_objects = [
        r for r in records if any(n in r.get("message", "") for n in names) or "object" in r
    ]
    # The operator also watches the Secrets it protects (label syncjob.dev/secret-in-use):
    # lines about those name the Secret, kind and all.
    secrets = {"truto-token", "twinmaker-credentials"}
    seen = set()
    for record in about_objects:
        ref = record.get("object")
        assert isinstance(ref, dict), f"no object field: {record}"
        assert ref.get("namespace") == cluster_release.apps, record
        if ref.get("kind") == "Secret":
            assert ref.get("name") in secrets, record
            continue
        assert ref.get("name") in names, record
        seen.add(ref["name"])
    assert seen == names  # each object got at least one line


def test_secret_values_never_leave_their_secrets(kubectl: Cli, cluster_release: Release) -> None:
    assert set(SECRET_VALUES) == {"token", "AWS_SECRET_ACCESS_KEY"}
    places = {
        "operator log": cluster_release.log.read_text(),
        "events": kubectl.run("get", "events", "-n", cluster_release.apps, "-o", "json").stdout,
        "syncjobs": kubectl.run("get", "syncjobs", "-n", cluster_release.apps, "-o", "json").stdout,
        "metrics": cluster_release.operator.metrics(),
        "kubectl describe": kubectl.run("describe", "syncjobs", "-n", cluster_release.apps).stdout,
    }
    assert "factory-sitewise" in places["events"]  # the operator did post Events
    assert leaks({f"the example's {k}": v for k, v in SECRET_VALUES.items()}, places) == []


def test_namespaced_release_with_peering(
    kubectl: Cli,
    helm: Cli,
    control_plane: ControlPlane,
    emulators: RunningEmulators,
    cluster_release: Release,
    tmp_path: Path,
) -> None:
    """A second release, namespaced and with peering, next to the first: its operator works
    in its one namespace through a Role, and meets its peers in a KopfPeering there."""
    suffix = uuid.uuid4().hex[:6]
    namespace, team, name = f"syncjob-team-{suffix}", f"team-{suffix}", f"sjt-{suffix}"
    for ns in (namespace, team):
        kubectl.run("create", "namespace", ns)
    values = {
        "watchNamespaces": [team],
        "peering": {"enabled": True, "priority": 10},
        **_provider_defaults(emulators),
    }
    notes = _install(helm, name, namespace, values)
    fullname = f"{name}-syncjob-operator"
    who = f"system:serviceaccount:{namespace}:{fullname}"
    for verb in ("get", "list", "watch", "patch"):
        assert _can(kubectl, who, verb, "secrets", "-n", team), verb
    assert _can(kubectl, who, "patch", "kopfpeerings.kopf.dev", "-n", team)
    assert _can(kubectl, who, "watch", "syncjobs.syncjob.dev", "-n", team)
    for args in (
        ("get", "secrets", "-n", cluster_release.apps),
        ("get", "secrets", "-n", namespace),
        ("get", "secrets", "-n", "default"),
        ("patch", "secrets", "-n", cluster_release.apps),
        ("patch", "secrets", "-n", namespace),
        ("list", "secrets", "-n", "default"),
        ("list", "secrets", "-A"),
        ("watch", "secrets", "-A"),
        ("create", "secrets", "-n", team),
        ("update", "secrets", "-n", team),
        ("delete", "secrets", "-n", team),
        ("list", "syncjobs.syncjob.dev", "-A"),
        ("get", "syncjobs.syncjob.dev", "-n", cluster_release.apps),
        ("patch", "clusterkopfpeerings.kopf.dev"),
        ("create", "events", "-n", cluster_release.apps),
        ("list", "namespaces"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ):
        assert not _can(kubectl, who, *args), f"can {args}"

    operator = _operator_as_installed(
        kubectl, control_plane, namespace, name, tmp_path, "op-team-0"
    )
    assert f"--namespace={team}" in operator.extra_args
    assert f"--peering={fullname}" in operator.extra_args
    operator.start()
    started = time.monotonic()
    try:
        # Follow the NOTES: the Secret, their SyncJob, their wait command.
        kubectl.run(
            "create", "secret", "generic", "truto-token", "-n", team,
            f"--from-literal=token={SECRET_VALUES['token']}",
        )  # fmt: skip
        heredoc = notes.split("apply -f - <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
        kubectl.apply(heredoc, "-n", team)
        wait = re.search(r"kubectl -n \S+ (wait --for=condition=Ready \S+ --timeout=\S+)", notes)
        assert wait is not None, notes
        kubectl.run("-n", team, *wait.group(1).split())
        # A namespaced operator has no business listing namespaces (its Role cannot): it must
        # not sit out kopf's retries of that forbidden call (about a minute) before working.
        assert time.monotonic() - started < 30, (
            "the namespaced operator took over 30s to make its SyncJob Ready; log:\n"
            + operator.log_tail(30)
        )
        peering = kubectl.json("get", "kopfpeering", fullname, "-n", team)
        assert peering["status"]["op-team-0"]["priority"] == 10
        job = kubectl.json("get", "syncjob", "crm-contacts", "-n", team)
        assert job["status"]["remote"]["state"] == "PRESENT"
        # The cluster-wide release's shard (label shard=a) left this unlabelled one alone.
        assert not [
            r
            for r in _log_lines(cluster_release.log)
            if r.get("object", {}).get("namespace") == team
        ]
        _delete_syncjobs(kubectl, team)
    except BaseException:
        print(f"--- operator log:\n{operator.log_tail(80)}")
        raise
    finally:
        operator.stop()
    # The Role covers everything the operator does: not one refused call.
    denied = [
        r["message"] for r in _log_lines(operator.log_path)
        if re.search(r"forbidden|not enough permissions|failed to post", r["message"], re.I)
    ]  # fmt: skip
    assert not denied, denied
    helm.run("uninstall", name, "-n", namespace)
    assert not kubectl.exists("role", fullname, "-n", team)
    assert not kubectl.exists("kopfpeering", fullname, "-n", team)
    for ns in (namespace, team):
        kubectl.run("delete", "namespace", ns, "--wait=false")


def test_upgrade_then_uninstall(
    kubectl: Cli, helm: Cli, emulators: RunningEmulators, cluster_release: Release
) -> None:
    name, ns = cluster_release.name, cluster_release.namespace
    fullname = cluster_release.service_account
    helm.run(
        "upgrade",
        name,
        str(CHART),
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "operator.resyncSeconds=120",
    )
    history = json.loads(helm.run("history", name, "-n", ns, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
    args = kubectl.json("get", "deployment", fullname, "-n", ns)["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--resync-seconds=120" in args
    assert "--selector=syncjob.dev/shard=a" in args  # reused

    # Uninstall in the right order: SyncJobs first, while the operator can still finalize them.
    with (
        EmulatorAdmin(emulators.twinmaker_url) as twinmaker,
        EmulatorAdmin(emulators.truto_url) as truto,
    ):
        deletes_before = twinmaker.count("DeleteSyncJob"), truto.count("DeleteSyncJob")
        _delete_syncjobs(kubectl, cluster_release.apps)
        assert twinmaker.count("DeleteSyncJob") > deletes_before[0]
        assert truto.count("DeleteSyncJob") > deletes_before[1]
    cluster_release.operator.stop()
    helm.run("uninstall", name, "-n", ns)
    for kind, object_name in (
        ("deployment", fullname),
        ("serviceaccount", fullname),
        ("secret", f"{fullname}-provider-defaults"),
    ):
        assert not kubectl.exists(kind, object_name, "-n", ns), kind
    assert not kubectl.exists("clusterrole", fullname)
    assert not kubectl.exists("clusterrolebinding", f"{fullname}-crd-watch")
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        assert not kubectl.exists(kind, secret_policy_name(fullname, ns))
    # Helm never deletes what crds/ installed.
    assert kubectl.exists("crd", "syncjobs.syncjob.dev")
    wait_until(
        lambda: not kubectl.run("get", "pods", "-n", ns, "-o", "name").stdout.strip(),
        timeout=30,
        what="the Deployment's pods gone",
    )
