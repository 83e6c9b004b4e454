"""The local control plane behaves like a real cluster for what the operator relies on."""

from __future__ import annotations

import json
import subprocess
import textwrap
from typing import Any

from syncjob_devtools.localcluster import ControlPlane
from tests.support.kube import Cli, wait_until

WIDGET_CRD = textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: widgets.probe.syncjob.dev}
    spec:
      group: probe.syncjob.dev
      scope: Namespaced
      names: {plural: widgets, singular: widget, kind: Widget}
      versions:
        - name: v1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  properties:
                    size: {type: integer, minimum: 1}
""")


def test_server_reports_the_pinned_version(kubectl: Cli) -> None:
    version = json.loads(kubectl.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.35.4"
    assert version["serverVersion"]["minor"] == "35"


def test_crd_object_is_applied_watched_and_deleted(kubectl: Cli, namespace: str) -> None:
    kubectl.apply(WIDGET_CRD)
    kubectl.run("wait", "--for=condition=Established", "crd/widgets.probe.syncjob.dev")
    watch = subprocess.Popen(
        [
            "kubectl",
            "get",
            "widgets",
            "-n",
            namespace,
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kubectl.apply(_widget("w1", namespace, size=3))
        assert kubectl.json("get", "widget", "w1", "-n", namespace)["spec"]["size"] == 3
        rejected = kubectl.run(
            "apply",
            "-f",
            "-",
            check=False,
            stdin=_widget("w2", namespace, size=0),
        )
        assert rejected.returncode != 0
        assert "spec.size" in rejected.stderr
        kubectl.run("delete", "widget", "w1", "-n", namespace)
    finally:
        watch.terminate()
        out, _ = watch.communicate(timeout=10)
    events = _json_stream(out)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"),
        ("DELETED", "w1"),
    ]


def test_namespace_deletion_completes(kubectl: Cli) -> None:
    kubectl.run("create", "namespace", "doomed")
    kubectl.run("create", "configmap", "data", "-n", "doomed", "--from-literal=k=v")
    kubectl.run("delete", "namespace", "doomed", "--wait=false")
    # The namespace controller (kube-controller-manager) empties it, then it disappears.
    wait_until(lambda: not kubectl.exists("namespace", "doomed"), timeout=60, what="namespace gone")


def test_an_apiserver_restart_keeps_its_address_and_what_etcd_stored(
    control_plane: ControlPlane, kubectl: Cli, namespace: str
) -> None:
    kubectl.run("create", "configmap", "kept", "-n", namespace, "--from-literal=k=v")
    control_plane.restart_apiserver(down_seconds=1)
    # The same kubeconfig (address, port, certificates) reaches it, and it serves etcd's data.
    kept = kubectl.json("get", "configmap", "kept", "-n", namespace)
    assert kept["data"] == {"k": "v"}


def test_owner_reference_garbage_collection(kubectl: Cli, namespace: str) -> None:
    kubectl.run("create", "configmap", "owner", "-n", namespace)
    uid = kubectl.json("get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    kubectl.apply(
        textwrap.dedent(f"""
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: dependent
          namespace: {namespace}
          ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}]
    """)
    )
    kubectl.run("delete", "configmap", "owner", "-n", namespace)
    wait_until(
        lambda: not kubectl.exists("configmap", "dependent", "-n", namespace),
        timeout=60,
        what="dependent collected",
    )


def _widget(name: str, namespace: str, *, size: int) -> str:
    return (
        "{apiVersion: probe.syncjob.dev/v1, kind: Widget,"
        f" metadata: {{name: {name}, namespace: {namespace}}}, spec: {{size: {size}}}}}"
    )


def _json_stream(text: str) -> list[dict[str, Any]]:
    """Parses kubectl's stream of concatenated, pretty-printed JSON documents."""
    decoder = json.JSONDecoder()
    documents, index, end = [], 0, len(text.rstrip())
    while index < end:
        while text[index].isspace():
            index += 1
        document, index = decoder.raw_decode(text, index)
        documents.append(document)
    return documents


def test_the_devtools_command_starts_and_stops_a_control_plane() -> None:
    """`syncjob-devtools cluster --once`, as the README's figures are measured."""
    proc = subprocess.run(
        ["syncjob-devtools", "cluster", "--once"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ready in "), proc.stdout
    for binary in ("etcd", "kube-apiserver", "kube-controller-manager"):
        assert f"\n{binary}: " in proc.stdout
