"""Rendering the Helm chart with named value sets, shared by the chart tests."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "syncjob-operator"
RELEASE = "sj"
RELEASE_NAMESPACE = "syncjob-system"
FULLNAME = f"{RELEASE}-syncjob-operator"
SECRET_FINALIZER = "syncjob.dev/secret-in-use"  # also the label's key


def secret_policy_name(fullname: str, namespace: str) -> str:
    """Name of the cluster-scoped Secret-protection policy and binding of a release."""
    return f"{fullname}-secret-protection.{namespace}"


# Each value set is a way the chart is meant to be installed; every chart test that is not
# about one value in particular runs over all of them.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "peering": {"peering": {"enabled": True, "priority": 100}},
    "peering-namespaced": {
        "watchNamespaces": ["team-a"],
        "peering": {"enabled": True, "name": "syncjobs", "priority": 5},
    },
    "monitoring": {
        "metrics": {
            "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Platform"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        }
    },
    "service-monitor": {
        "metrics": {
            "serviceMonitor": {
                "enabled": True,
                "labels": {"release": "kube-prometheus-stack"},
                "interval": "15s",
                "relabelings": [
                    {
                        "action": "replace",
                        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                        "targetLabel": "node",
                    }
                ],
                "metricRelabelings": [
                    {
                        "action": "drop",
                        "sourceLabels": ["__name__"],
                        "regex": "syncjob_reconcile_duration_seconds_bucket",
                    }
                ],
            }
        }
    },
    "selector": {"selector": {"syncjob.dev/shard": "blue", "tier": "prod"}},
    "everything-else": {
        "image": {
            "repository": "registry.example/platform/syncjob-operator",
            "digest": "sha256:" + "0123456789abcdef" * 4,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "operator": {
            "logFormat": "plain",
            "verbose": True,
            "resyncSeconds": 300,
            "pollSeconds": 5,
            "awsWorkers": 16,
            "maxConcurrentReconciles": 32,
            "extraArgs": ["--verbose"],
        },
        "providerDefaults": {
            "env": {"AWS_REGION": "eu-west-1", "SYNCJOB_TRUTO_BASE_URL": "https://truto.internal"}
        },
        "serviceAccount": {
            "annotations": {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/syncjob-operator"
            }
        },
        "networkPolicy": {
            "metricsFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ]
        },
        "podAnnotations": {"example.com/team": "platform"},
        "podLabels": {"example.com/cost-center": "42"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": ["amd64", "arm64"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
            }
        ],
        "priorityClassName": "system-cluster-critical",
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
    },
    "minimal": {
        "rbac": {"watchCRDs": False},
        "networkPolicy": {"enabled": False},
        "metrics": {"service": {"enabled": False}},
        "serviceAccount": {"create": False, "name": "platform-operators"},
        "providerDefaults": {"existingSecret": "syncjob-provider-defaults"},
        "secretProtection": {"admissionPolicy": False},
    },
}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def value_args(values: dict[str, Any]) -> list[str]:
    """--set-json for each top-level key: the values reach Helm as typed JSON, no temp file."""
    return [
        arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]


def template_args(values: dict[str, Any]) -> list[str]:
    return ["template", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE, *value_args(values)]


@functools.cache
def _render_text(name: str) -> str:
    return helm(*template_args(VALUE_SETS[name])).stdout


def render_text(name: str) -> str:
    """`helm template` output of the value set `name` (cached per process)."""
    return _render_text(name)


def render(name: str) -> list[dict[str, Any]]:
    """The rendered objects of the value set `name`."""
    return [doc for doc in yaml.safe_load_all(render_text(name)) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = find(docs, "Deployment")
    return found


def rbac_rules(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(role kind/namespace/name, rule) for every rule of every Role and ClusterRole."""
    return [
        (f"{d['kind']}/{d['metadata'].get('namespace', '')}/{d['metadata']['name']}", rule)
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        for rule in d.get("rules", [])
    ]
