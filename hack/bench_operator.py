"""Operator benchmark: N SyncJobs per provider applied at once against the local control plane
and emulators; reports time until all are Ready, the operator's peak RSS, and the remote reads
one resync period costs (list calls per scope versus one get per object).

    python hack/bench_operator.py --jobs 100

Timings are measured here, never asserted in tests. Bounded: it stops by itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.truto import TrutoConfig
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import CRDS_DIR, OperatorProcess

NAMESPACE = "bench"
INTEGRATIONS = 10  # Truto jobs share integrations: one list call per integration per resync


def _manifests(jobs: int) -> str:
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "truto"},
            "stringData": {"token": "t"},
        }
    ]
    for i in range(jobs):
        docs.append(
            {
                "apiVersion": "syncjob.dev/v1alpha1",
                "kind": "SyncJob",
                "metadata": {"name": f"truto-{i}"},
                "spec": {
                    "truto": {
                        "integrationName": f"crm{i % INTEGRATIONS}",
                        "tokenSecretRef": {"name": "truto", "key": "token"},
                        "argsSchema": {"type": "object"},
                        "resources": [{"resource": f"crm/r{i}", "method": "list"}],
                    }
                },
            }
        )
        docs.append(
            {
                "apiVersion": "syncjob.dev/v1alpha1",
                "kind": "SyncJob",
                "metadata": {"name": f"twin-{i}"},
                "spec": {
                    "awsIoTTwinMaker": {
                        "region": "us-east-1",
                        "workspaceId": f"ws{i}",
                        "syncSource": "SITEWISE",
                        "syncRole": "arn:aws:iam::123456789012:role/r",
                    }
                },
            }
        )
    return yaml.safe_dump_all(docs)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100, help="SyncJobs per provider")
    parser.add_argument("--resync-seconds", type=float, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="syncjob-bench-"))
    with (
        ControlPlane() as plane,
        RunningEmulators(
            TwinMakerConfig(transition_seconds=0.5),
            TrutoConfig(tokens=frozenset({"t"})),
        ) as emu,
    ):
        twinmaker = twinmaker_client(emu.twinmaker_url)
        # TwinMaker accepts one SITEWISE job per workspace: one workspace per job.
        for w in range(args.jobs):
            twinmaker.create_workspace(workspaceId=f"ws{w}")
        kubectl = ["kubectl", "--kubeconfig", str(plane.kubeconfig)]
        subprocess.run([*kubectl, "apply", "-f", str(CRDS_DIR)], check=True, capture_output=True)
        subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "crd/syncjobs.syncjob.dev"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True
        )
        operator = OperatorProcess(
            kubeconfig=plane.kubeconfig,
            log_path=work / "operator.log",
            twinmaker_url=emu.twinmaker_url,
            truto_url=emu.truto_url,
            resync_seconds=args.resync_seconds,
            poll_seconds=1.0,
        )
        operator.start()
        try:
            pid = operator.pid
            peak = _rss_kib(pid)
            idle_rss = peak
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.wait(0.2):
                    peak = max(peak, _rss_kib(pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            subprocess.run(
                [*kubectl, "apply", "-n", NAMESPACE, "-f", "-"],
                input=_manifests(args.jobs),
                text=True,
                check=True,
                capture_output=True,
            )
            applied = time.monotonic() - started
            subprocess.run(
                [
                    *kubectl,
                    "wait",
                    "-n",
                    NAMESPACE,
                    "--for=condition=Ready",
                    "syncjob",
                    "--all",
                    "--timeout=600s",
                ],
                check=True,
                capture_output=True,
            )
            all_ready = time.monotonic() - started
            with EmulatorAdmin(emu.twinmaker_url) as tm, EmulatorAdmin(emu.truto_url) as tr:
                before = (tm.calls().operations, tr.calls().operations)
                time.sleep(args.resync_seconds * 1.5)  # at least one full resync of every object
                after = (tm.calls().operations, tr.calls().operations)
            done.set()
        finally:
            operator.stop()
    reads = {
        provider: {
            op: after[i].get(op, 0) - before[i].get(op, 0)
            for op in ("ListSyncJobs", "GetSyncJob")
            if after[i].get(op, 0) - before[i].get(op, 0)
        }
        for i, provider in enumerate(("twinmaker", "truto"))
    }
    print(
        json.dumps(
            {
                "syncjobs": 2 * args.jobs,
                "kubectl_apply_seconds": round(applied, 1),
                "all_ready_seconds": round(all_ready, 1),
                "ready_per_second": round(2 * args.jobs / all_ready, 1),
                "operator_rss_mib_idle": round(idle_rss / 1024, 1),
                "operator_rss_mib_peak": round(peak / 1024, 1),
                f"remote_reads_in_{args.resync_seconds * 1.5:g}s_of_resync": reads,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
