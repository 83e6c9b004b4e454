"""`syncjob-devtools demo`: the whole thing on local defaults, narrated.

A real control plane, both provider emulators, the operator as its own process, the example
SyncJobs applied with kubectl, their status shown once Ready, then deleted cleanly. With
`--helm`, the operator is the image built from the Dockerfile instead, installed with the chart
onto a real local node (kubelet, containerd), as a user installs it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import yaml

from syncjob_devtools.chartvalues import node_chart_values
from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localnode import GATEWAY, node_cluster
from syncjob_devtools.localrun import CRDS_DIR, OperatorProcess

EXAMPLES_DIR = CRDS_DIR.parent / "examples"
CHART_DIR = CRDS_DIR.parent / "charts" / "syncjob-operator"
NAMESPACE = "syncjob-demo"
RELEASE, RELEASE_NAMESPACE = "syncjob", "syncjob-system"


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _kubectl(plane: ControlPlane, *args: str) -> str:
    return _run(plane, "kubectl", *args)


def _run(plane: ControlPlane, tool: str, *args: str) -> str:
    print(f"$ {tool} {' '.join(args)}", flush=True)
    proc = subprocess.run(
        [tool, *args], env=plane.env(), capture_output=True, text=True, check=False
    )
    output = (proc.stdout + proc.stderr).rstrip()
    if output:
        print(output, flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {' '.join(args)} failed")
    return proc.stdout


def run_demo(*, keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="syncjob-demo-"))
    try:
        _say("starting etcd, kube-apiserver and kube-controller-manager on loopback")
        with (
            ControlPlane() as plane,
            RunningEmulators(TwinMakerConfig(transition_seconds=1.0)) as emu,
        ):
            print(
                f"control plane: {plane.server}\nTwinMaker emulator: {emu.twinmaker_url}\n"
                f"Truto emulator: {emu.truto_url}"
            )
            twinmaker_client(emu.twinmaker_url).create_workspace(workspaceId="factory-floor")
            _say("installing the SyncJob CRD")
            _kubectl(plane, "apply", "-f", str(CRDS_DIR))
            _kubectl(plane, "wait", "--for=condition=Established", "crd/syncjobs.syncjob.dev")
            _say("starting the operator (log: %s)" % (work / "operator.log"))
            operator = OperatorProcess(
                kubeconfig=plane.kubeconfig,
                log_path=work / "operator.log",
                twinmaker_url=emu.twinmaker_url,
                truto_url=emu.truto_url,
            )
            operator.start()
            try:
                _show_lifecycle(plane, emu, keep=keep)
            except SystemExit:
                print(f"--- operator log (last lines):\n{operator.log_tail(60)}", flush=True)
                raise
            finally:
                operator.stop()
        _say("demo finished: both SyncJobs reached Ready and were deleted cleanly")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_helm_demo(*, image_archive: Path, image_reference: str, keep: bool = False) -> int:
    """The same lifecycle with the operator installed by `helm install` onto a local node."""
    work = Path(tempfile.mkdtemp(prefix="syncjob-helm-demo-"))
    try:
        _say("starting the control plane and a node (containerd, kubelet, kube-proxy)")
        with (
            node_cluster(work / "cluster") as cluster,
            RunningEmulators(TwinMakerConfig(transition_seconds=1.0), host=GATEWAY) as emu,
        ):
            plane = cluster.plane
            print(
                f"control plane: {plane.server}\nTwinMaker emulator: {emu.twinmaker_url}\n"
                f"Truto emulator: {emu.truto_url}"
            )
            twinmaker_client(emu.twinmaker_url).create_workspace(workspaceId="factory-floor")
            _say(f"loading {image_reference} into the node's containerd (no registry)")
            cluster.node.load_image(image_archive)
            values = work / "values.yaml"
            values.write_text(
                yaml.safe_dump(
                    node_chart_values(
                        image_reference, twinmaker_url=emu.twinmaker_url, truto_url=emu.truto_url
                    )
                )
            )
            _say("helm install: the kubelet starts the operator Pod and probes it")
            _run(plane, "helm", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NAMESPACE,
                 "--create-namespace", "-f", str(values), "--wait", "--timeout=180s")  # fmt: skip
            _kubectl(plane, "get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide")
            try:
                _show_lifecycle(plane, emu, keep=keep)
            except SystemExit:
                deployment = f"deployment/{RELEASE}-syncjob-operator"
                _kubectl(plane, "logs", "-n", RELEASE_NAMESPACE, deployment, "--tail=60")
                raise
            _say("helm uninstall")
            _run(plane, "helm", "uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait")
        _say("demo finished: the chart's Pod made both SyncJobs Ready and deleted them cleanly")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _show_lifecycle(plane: ControlPlane, emu: RunningEmulators, *, keep: bool) -> None:
    _kubectl(plane, "create", "namespace", NAMESPACE)
    _say("applying the example SyncJobs")
    _kubectl(plane, "apply", "-n", NAMESPACE, "-f", str(EXAMPLES_DIR))
    _say("waiting for both to be Ready (TwinMaker passes CREATING, INITIALIZING, ACTIVE)")
    _kubectl(
        plane,
        "wait",
        "-n",
        NAMESPACE,
        "--for=condition=Ready",
        "syncjob",
        "--all",
        "--timeout=120s",
    )
    _kubectl(plane, "get", "-n", NAMESPACE, "syncjobs")
    _kubectl(
        plane, "get", "-n", NAMESPACE, "syncjob", "factory-sitewise", "-o", "jsonpath={.status}"
    )
    print()
    _kubectl(plane, "get", "-n", NAMESPACE, "syncjob", "crm-contacts", "-o", "jsonpath={.status}")
    print()
    if keep:
        _say(f"running until Ctrl-C; try: KUBECONFIG={plane.kubeconfig} kubectl get sj -A")
        threading.Event().wait()
    _say("deleting them: the finalizer removes the remote jobs first")
    _kubectl(plane, "delete", "-n", NAMESPACE, "syncjob", "--all", "--timeout=120s")
    _kubectl(plane, "get", "-n", NAMESPACE, "syncjobs")
    with EmulatorAdmin(emu.twinmaker_url) as twinmaker, EmulatorAdmin(emu.truto_url) as truto:
        print(f"remote calls, TwinMaker: {twinmaker.calls().operations}")
        print(f"remote calls, Truto: {truto.calls().operations}")
