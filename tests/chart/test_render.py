"""The chart, rendered with every value set: lint, Kubernetes 1.35 schemas, checkov, RBAC and
pod-security invariants, and clear failures for wrong values."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from syncjob_devtools.localcluster import ControlPlane
from tests.chart.support import (
    CHART,
    FULLNAME,
    RELEASE_NAMESPACE,
    REPO,
    SECRET_FINALIZER,
    VALUE_SETS,
    deployment,
    find,
    helm,
    rbac_rules,
    render,
    render_text,
    secret_policy_name,
    template_args,
    value_args,
)
from tests.support.kube import Cli

KUBERNETES_VERSION = "1.35.0"
CHECKOV_CONFIG = CHART / "checkov.yaml"
SERVICEMONITOR_CRD = Path(__file__).parent / "testdata" / "servicemonitor-crd.yaml"
SETS = sorted(VALUE_SETS)


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD the chart ships."""
    schemas = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            for version in crd["spec"]["versions"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("name", SETS)
def test_helm_lint_strict(name: str) -> None:
    proc = helm("lint", "--strict", str(CHART), *value_args(VALUE_SETS[name]), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("name", SETS)
def test_rendered_objects_match_the_kubernetes_1_35_schemas(name: str) -> None:
    crd_schemas = _crd_schemas()
    validated = []
    for doc in render(name):
        key = (doc["apiVersion"], doc["kind"])
        if key in crd_schemas:
            # kopf's peering objects: the schema of the CRD shipped in the chart's crds/.
            jsonschema.validate(doc, crd_schemas[key])
        elif doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the API server checks it: test_servicemonitor_is_accepted_...
        else:
            # Strict: unknown fields fail, as `kubectl apply --validate=strict` would.
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        validated.append(f"{doc['kind']}/{doc['metadata']['name']}")
    assert f"Deployment/{FULLNAME}" in validated


def test_the_schema_validator_rejects_what_kubernetes_would() -> None:
    """Guards the test above against a validator that accepts anything."""
    good = deployment(render("default"))
    kubernetes_validate.validate(good, KUBERNETES_VERSION, strict=True)
    misspelt = json.loads(json.dumps(good))
    misspelt["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    wrong_type = json.loads(json.dumps(good))
    wrong_type["spec"]["replicas"] = "one"
    for bad in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


@pytest.mark.cluster
def test_servicemonitor_is_accepted_by_the_api_server(
    kubectl: Cli, control_plane: ControlPlane, namespace: str
) -> None:
    kubectl.run("apply", "-f", str(SERVICEMONITOR_CRD))
    kubectl.run("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")
    (monitor,) = find(render("service-monitor"), "ServiceMonitor")
    monitor["metadata"]["namespace"] = namespace
    dry_run = ("apply", "-f", "-", "--dry-run=server", "--validate=strict")
    kubectl.run(*dry_run, stdin=json.dumps(monitor))
    # The CRD really checks: a bad interval and a misspelt field are both refused.
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = "every 15 seconds"
    rejected = kubectl.run(*dry_run, stdin=json.dumps(broken), check=False)
    assert rejected.returncode != 0
    assert "interval" in rejected.stderr
    misspelt = json.loads(json.dumps(monitor))
    misspelt["spec"]["endpoints"][0]["scrapeTimout"] = "5s"
    rejected = kubectl.run(*dry_run, stdin=json.dumps(misspelt), check=False)
    assert rejected.returncode != 0
    assert "scrapeTimout" in rejected.stderr


def test_checkov_passes_every_value_set(tmp_path: Path) -> None:
    for name in SETS:
        (tmp_path / f"{name}.yaml").write_text(render_text(name))
    proc = subprocess.run(
        ["checkov", "--config-file", str(CHECKOV_CONFIG), "-d", str(tmp_path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for c in report["results"].get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= sum(len(render(name)) for name in SETS) - len(SETS)
    assert summary["passed"] > 200, summary


def test_every_checkov_exception_says_why() -> None:
    config = yaml.safe_load(CHECKOV_CONFIG.read_text())
    skipped = config.get("skip-check", [])
    assert skipped, "expected the accepted exceptions to be listed"
    text = CHECKOV_CONFIG.read_text()
    for check in skipped:
        # Each skip is preceded by a comment that names it and gives a reason.
        explained = re.search(rf"^\s*# {re.escape(check)} .{{40,}}", text, re.MULTILINE)
        assert explained, f"{check} is skipped without a reason in {CHECKOV_CONFIG.name}"
    assert config.get("skip-download") is True  # no calls to the vendor's platform


@pytest.mark.parametrize("name", SETS)
def test_rbac_is_least_privilege(name: str) -> None:
    allowed = {
        ("syncjob.dev", "syncjobs"): {"get", "list", "watch", "patch"},
        ("syncjob.dev", "syncjobs/status"): {"get", "patch"},
        # get: a SyncJob's Secret by name; list/watch: kopf's watch of the labelled ones;
        # patch: their finalizer and label (secret-protection.yaml limits it to that).
        ("", "secrets"): {"get", "list", "watch", "patch"},
        ("", "events"): {"create"},
        ("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"},
        ("kopf.dev", "kopfpeerings"): {"get", "list", "watch", "patch"},
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    }
    rules = rbac_rules(render(name))
    assert rules
    for role, rule in rules:
        fields = [*rule.get("apiGroups", []), *rule.get("resources", []), *rule["verbs"]]
        assert "*" not in fields, f"wildcard in {role}: {rule}"
        assert not rule.get("nonResourceURLs"), f"{role}: {rule}"
        assert not rule.get("resourceNames"), f"{role}: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                extra = set(rule["verbs"]) - allowed.get((group, resource), set())
                assert not extra, f"{role} grants {sorted(extra)} on {group}/{resource}"


def test_namespaced_mode_has_no_cluster_scoped_rbac() -> None:
    docs = render("watch-namespaces")
    assert not find(docs, "ClusterRole")
    assert not find(docs, "ClusterRoleBinding")
    roles = find(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = find(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}
        ]
    args = deployment(docs)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    # Cluster-wide mode: the CRD watch is its own ClusterRole, and can be left out.
    (crd_watch,) = find(render("default"), "ClusterRole", f"{FULLNAME}-crd-watch")
    assert crd_watch["rules"] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        }
    ]
    assert not find(render("minimal"), "ClusterRole", f"{FULLNAME}-crd-watch")


def _secret_policy(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (policy,) = find(docs, "ValidatingAdmissionPolicy")
    (binding,) = find(docs, "ValidatingAdmissionPolicyBinding")
    return policy, binding


@pytest.mark.parametrize("name", SETS)
def test_secret_protection_policy_renders_unless_disabled(name: str) -> None:
    docs = render(name)
    if VALUE_SETS[name].get("secretProtection", {}).get("admissionPolicy") is False:
        assert not find(docs, "ValidatingAdmissionPolicy")
        assert not find(docs, "ValidatingAdmissionPolicyBinding")
        return
    policy, binding = _secret_policy(docs)
    name_ = secret_policy_name(FULLNAME, RELEASE_NAMESPACE)
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == name_
    assert "namespace" not in policy["metadata"]  # cluster-scoped
    assert binding["spec"] == {"policyName": name_, "validationActions": ["Deny"]}
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"] == {
        "resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
             "resources": ["secrets"]}
        ]
    }  # fmt: skip
    account = deployment(docs)["spec"]["template"]["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}"
    assert spec["matchConditions"] == [
        {
            "name": "is-the-operator",
            "expression": f"request.userInfo.username == {json.dumps(user)}",
        }
    ]
    expressions = " ".join(v["expression"] for v in spec["validations"])
    # Each field compared old to new, through optional access (absent = absent); what they
    # refuse is tested against the API server in test_secret_protection.py.
    for field in ("data", "stringData", "type", "immutable", "annotations", "ownerReferences"):
        assert f"object.?{field}" in expressions.replace("metadata.", ""), field
        assert f"oldObject.?{field}" in expressions.replace("metadata.", ""), field
    assert f"'{SECRET_FINALIZER}'" in spec["variables"][0]["expression"]
    for validation in spec["validations"]:
        assert validation["reason"] == "Forbidden"
        assert "\n" not in validation["message"]  # the API server refuses multi-line messages
        assert SECRET_FINALIZER in validation["message"]
        assert "is forbidden" in validation["message"]


def test_secret_protection_policy_follows_the_service_account_and_is_unique_per_release() -> None:
    values = {"serviceAccount": {"create": False, "name": "platform-operators"}}
    docs = [d for d in yaml.safe_load_all(helm(*template_args(values)).stdout) if d]
    policy, _ = _secret_policy(docs)
    (condition,) = policy["spec"]["matchConditions"]
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:platform-operators"
    assert condition["expression"] == f'request.userInfo.username == "{user}"'
    # Cluster-scoped: the same release name in another namespace is another operator, and
    # another policy; two release names in one namespace differ by their full names.
    names = set()
    for release, namespace in (("sj", "ns-a"), ("sj", "ns-b"), ("other", "ns-a")):
        args = ["template", release, str(CHART), "--namespace", namespace]
        rendered = [d for d in yaml.safe_load_all(helm(*args).stdout) if d]
        policy, binding = _secret_policy(rendered)
        assert binding["spec"]["policyName"] == policy["metadata"]["name"]
        assert f":{namespace}:" in policy["spec"]["matchConditions"][0]["expression"]
        names.add(policy["metadata"]["name"])
    assert len(names) == 3


def test_schema_validator_knows_the_admission_policy_kinds() -> None:
    """The 1.35 schemas (kubernetes_validate) include ValidatingAdmissionPolicy(Binding) v1:
    the render test above really checks them, it does not skip them."""
    for doc in _secret_policy(render("default")):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        misspelt = json.loads(json.dumps(doc))
        misspelt["spec"]["validationAction"] = ["Deny"]
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = deployment(docs)["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("name", SETS)
def test_pod_runs_locked_down(name: str) -> None:
    docs = render(name)
    pod = deployment(docs)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert not pod.get("initContainers")
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    # The API token: projected, short-lived, only in the container that uses it, read-only.
    (token_volume,) = [v for v in pod["volumes"] if "projected" in v]
    (token,) = [s for s in token_volume["projected"]["sources"] if "serviceAccountToken" in s]
    assert token["serviceAccountToken"]["expirationSeconds"] <= 3607
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == token_volume["name"]]
    assert mount == {
        "name": token_volume["name"],
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }
    for account in find(docs, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    # Probes: kopf's liveness endpoint and the operator's /readyz, on the ports it serves.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert f"--liveness=http://0.0.0.0:{ports['health']}/healthz" in args
    assert f"--metrics-address=0.0.0.0:{ports['metrics']}" in args
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert args[0] == "run"


def test_default_install() -> None:
    docs = render("default")
    dep = deployment(docs)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}  # standalone: never two at once
    container = _container(docs)
    assert container["image"] == "syncjob-operator:0.2.0"  # the chart's appVersion
    assert not [a for a in container["args"] if a.startswith(("--namespace", "--peering"))]
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
            "NetworkPolicy", "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"} <= {d["kind"] for d in docs}  # fmt: skip
    assert not find(docs, "ServiceMonitor")
    assert not find(docs, "Secret")
    assert not find(docs, "ClusterKopfPeering")


def test_peering() -> None:
    docs = render("peering")
    args = _container(docs)["args"]
    assert f"--peering={FULLNAME}" in args
    assert "--priority=100" in args
    (peering,) = find(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == FULLNAME
    assert deployment(docs)["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 1,
        "maxUnavailable": 0,
    }
    cluster_role = find(docs, "ClusterRole", FULLNAME)[0]
    assert {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "patch"]} in cluster_role["rules"]  # fmt: skip

    namespaced = render("peering-namespaced")
    assert "--peering=syncjobs" in _container(namespaced)["args"]
    (peering,) = find(namespaced, "KopfPeering")
    assert peering["metadata"] == {**peering["metadata"], "name": "syncjobs", "namespace": "team-a"}
    (role,) = find(namespaced, "Role")
    assert any(r["resources"] == ["kopfpeerings"] for r in role["rules"])
    # A second release joining the first one's peering does not create the object.
    # Replicas with a hot standby: the oldest process works (the operator reads "seniority").
    replicas = {"replicaCount": 2, "peering": {"enabled": True, "priority": "seniority",
                                               "lifetimeSeconds": 20}}  # fmt: skip
    docs = [d for d in yaml.safe_load_all(helm(*template_args(replicas)).stdout) if d]
    assert deployment(docs)["spec"]["replicas"] == 2
    assert {"--priority=seniority", "--peering-lifetime=20"} <= set(_container(docs)["args"])
    joining = {**VALUE_SETS["peering"], "peering": {"enabled": True, "create": False}}
    docs = [d for d in yaml.safe_load_all(helm(*template_args(joining)).stdout) if d]
    assert not find(docs, "ClusterKopfPeering")


def test_selector_shard() -> None:
    args = _container(render("selector"))["args"]
    assert "--selector=syncjob.dev/shard=blue,tier=prod" in args


def test_service_monitor_scrapes_the_metrics_service() -> None:
    docs = render("service-monitor")
    (monitor,) = find(docs, "ServiceMonitor")
    (service,) = find(docs, "Service")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_every_other_value_reaches_the_pod() -> None:
    docs = render("everything-else")
    values = VALUE_SETS["everything-else"]
    pod = deployment(docs)["spec"]["template"]["spec"]
    container = _container(docs)
    assert container["image"] == f"{values['image']['repository']}@{values['image']['digest']}"
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == values["imagePullSecrets"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
                "priorityClassName"):  # fmt: skip
        assert pod[key] == values[key], key
    assert container["resources"] == values["resources"]
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"} in container["env"]
    for flag in ("--log-format=plain", "--verbose", "--resync-seconds=300", "--poll-seconds=5",
                 "--aws-workers=16", "--max-concurrent-reconciles=32"):  # fmt: skip
        assert flag in container["args"], flag
    metadata = deployment(docs)["spec"]["template"]["metadata"]
    assert metadata["annotations"]["example.com/team"] == "platform"
    assert metadata["labels"]["example.com/cost-center"] == "42"
    assert "checksum/provider-defaults" in metadata["annotations"]
    (account,) = find(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == values["serviceAccount"]["annotations"]
    (secret,) = find(docs, "Secret")
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert set(secret["data"]) == {"AWS_REGION", "SYNCJOB_TRUTO_BASE_URL"}
    (policy,) = find(docs, "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"] == values["networkPolicy"]["metricsFrom"]


def test_minimal_install_uses_what_exists() -> None:
    docs = render("minimal")
    assert {d["kind"] for d in docs} == {"ClusterRole", "ClusterRoleBinding", "Deployment"}
    pod = deployment(docs)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operators"
    assert _container(docs)["envFrom"] == [{"secretRef": {"name": "syncjob-provider-defaults"}}]
    (binding,) = find(docs, "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "platform-operators"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        (
            {"replicaCount": 2},
            "replicaCount > 1 needs peering.enabled=true and peering.priority=seniority",
        ),
        (
            {"replicaCount": 2, "peering": {"enabled": True, "priority": 100}},
            "replicaCount > 1 needs peering.enabled=true and peering.priority=seniority",
        ),
        ({"peering": {"priority": "oldest"}}, "/peering/priority"),
        ({"peering": {"lifetimeSeconds": 5}}, "/peering/lifetimeSeconds"),
        ({"operator": {"logFormat": "xml"}}, "value must be one of 'json', 'plain'"),
        ({"watchNamespaces": ["team-*"]}, "does not match pattern"),
        ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
        ({"selector": {"tier": "a b"}}, "/selector/tier"),
        ({"peering": {"enabled": "yes"}}, "/peering/enabled"),
        ({"peering": {"priority": 1.5}}, "/peering/priority"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "/metrics/serviceMonitor"),
        ({"serviceAccount": {"anotations": {}}}, "additional properties 'anotations'"),
        ({"providerDefaults": {"env": {"aws-region": "x"}}}, "invalid propertyName 'aws-region'"),
        (
            {"providerDefaults": {"env": {"AWS_REGION": "x"}, "existingSecret": "s"}},
            "set either env or existingSecret, not both",
        ),
        (
            {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
            "metrics.serviceMonitor.enabled needs metrics.service.enabled",
        ),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
        ({"metrics": {"port": 8081}}, "metrics.port and health.port must differ"),
        ({"secretProtection": {"admissionPolicy": "yes"}}, "/secretProtection/admissionPolicy"),
        ({"secretProtection": {"enabled": True}}, "additional properties 'enabled' not allowed"),
    ],
)
def test_wrong_values_fail_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    proc = helm(*template_args(values), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_notes_tell_how_to_apply_and_check_a_first_syncjob() -> None:
    for values, namespace in (({}, "default"), (VALUE_SETS["watch-namespaces"], "team-a")):
        # `helm template` has no NOTES; `helm install --dry-run` renders them.
        notes = helm(
            "install", "sj", str(CHART), "--dry-run=client", "--namespace", RELEASE_NAMESPACE,
            *value_args(values),
        ).stdout.split("NOTES:", 1)[1]  # fmt: skip
        assert f"kubectl -n {namespace} wait --for=condition=Ready syncjob/crm-contacts" in notes
        assert f"kubectl -n {namespace} apply -f - <<'YAML'" in notes
        syncjob = _notes_syncjob(notes)
        assert syncjob["kind"] == "SyncJob"
        assert syncjob["spec"]["truto"]["tokenSecretRef"]
    labelled = helm(
        "install", "sj", str(CHART), "--dry-run=client", *value_args(VALUE_SETS["selector"])
    ).stdout
    # The example carries the shard's labels, or this release would ignore it.
    syncjob = _notes_syncjob(labelled.split("NOTES:", 1)[1])
    assert syncjob["metadata"]["labels"] == VALUE_SETS["selector"]["selector"]


def _notes_syncjob(notes: str) -> dict[str, Any]:
    """The SyncJob of the NOTES' heredoc, as a shell would pass it to kubectl."""
    heredoc = notes.split("apply -f - <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    syncjob: dict[str, Any] = yaml.safe_load(heredoc)
    return syncjob


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.30.0-0"
    project = (REPO / "pyproject.toml").read_text()
    assert f'version = "{chart["appVersion"]}"' in project  # image tag = package version
    old = helm(*template_args({}), "--kube-version", "1.29.0", check=False)
    assert old.returncode != 0
    assert "kubeVersion" in old.stderr
