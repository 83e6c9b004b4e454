"""Operator benchmark, side by side with a same-run baseline of the API server's own cost.

    python hack/bench_operator.py --jobs 500            # 1,000 SyncJobs, half per provider
    python hack/bench_operator.py --jobs 5000 --soak-seconds 3600
    python hack/bench_operator.py --jobs 200 --truto-rate-limit 100   # 429s under a rate limit
    python hack/bench_operator.py --jobs 1000 --twinmaker-throttling  # AWS-like request rates

One run, one control plane, the emulators (TwinMaker 0.5 s per state) and the operator side by
side. Phases, each reported:
  baseline  the same SyncJobs applied with kubectl into a namespace the operator does not
            watch, then one status patch each from a 32-way client: the minimum the API server
            must do for these objects
  floor     the same SyncJobs applied with kubectl into a third namespace while a 32-way client,
            fed by a watch as an operator is, makes each object's four operator writes
            (server-side apply of the crash guard and finalizer, the metadata patch, the status
            patch, the Event) as soon as it appears: what this design's writes cost the API
            server with no operator and no provider. Ready's ratio above the floor's is the
            operator's own CPU
  peer      the smallest kopf operator that does a SyncJob's visible work (hack/bench_peer.py:
            kopf's finalizer, one Ready status write, one Event, no provider call) over the
            same SyncJobs in a fourth namespace: its CPU per object is the yardstick
  ready     the SyncJobs applied into the operator's namespace; Ready counted from a list and a
            watch (a new list whenever the API server closes the watch);
            API writes (apiserver_request_total) and remote calls per object until all Ready
  settle    until every TwinMaker job has had its first status.syncProgress read (a whole
            drift pass, one --sync-progress-seconds for the randomly spread first reads, a
            whole drift pass again): the writes of those first reads
  steady    nothing changing for --steady-seconds: API writes and remote calls per period
  restart   the operator restarted over the settled objects: writes and reads it costs until
            its first drift pass is done
  soak      operator RSS sampled over --soak-seconds with drift passes running (optional)

Timings are measured here, never asserted in tests. Bounded: it stops by itself.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kopf
import yaml
from kubernetes import client, config, watch

from syncjob_devtools.apicounts import (
    api_writes,
    drift_passes,
    operator_writes,
    wait_for_drift_passes,
)
from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.throttling import DEFAULT_REQUEST_RATES, RequestRate
from syncjob_devtools.emulators.truto import TrutoConfig
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import CRDS_DIR, OperatorProcess
from syncjob_operator.converge import Outcome
from syncjob_operator.kopf_edge.settings import LAST_HANDLED
from syncjob_operator.kube import (
    APPLY_PATCH,
    FIELD_MANAGER,
    GROUP,
    MERGE_PATCH,
    PLURAL,
    VERSION,
    crash_guard,
)
from syncjob_operator.model import (
    CREATE_PENDING_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    PendingCreate,
    SyncJob,
)
from syncjob_operator.providers.base import Observation
from syncjob_operator.status import READY, compute_status, condition_status

NAMESPACE, BASELINE, FLOOR, PEER = "bench", "baseline", "floor", "peer"
PEER_OPERATOR = Path(__file__).with_name("bench_peer.py")
INTEGRATIONS = 10  # Truto jobs share integrations: one list call per integration per drift pass
READY_DEADLINE_SECONDS = 3600


def manifests_of(jobs: int) -> list[dict[str, Any]]:
    """`jobs` Truto SyncJobs (over INTEGRATIONS integrations) and `jobs` TwinMaker SyncJobs (a
    workspace each)."""
    syncjobs: list[dict[str, Any]] = []
    for i in range(jobs):
        truto = {
            "integrationName": f"crm{i % INTEGRATIONS}",
            "tokenSecretRef": {"name": "truto", "key": "token"},
            "argsSchema": {"type": "object"},
            "resources": [{"resource": f"crm/r{i}", "method": "list"}],
        }
        twin = {
            "region": "us-east-1",
            "workspaceId": f"ws{i}",
            "syncSource": "SITEWISE",
            "syncRole": "arn:aws:iam::123456789012:role/r",
        }
        for name, spec in (
            (f"truto-{i}", {"truto": truto}),
            (f"twin-{i}", {"awsIoTTwinMaker": twin}),
        ):
            syncjobs.append(
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "SyncJob",
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )
    return syncjobs


def manifests(jobs: int) -> str:
    """The Truto token's Secret and manifests_of(jobs), as one YAML stream."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "truto"},
        "stringData": {"token": "t"},
    }
    return yaml.safe_dump_all([secret, *manifests_of(jobs)])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plane_pids(plane: ControlPlane, *names: str) -> dict[str, int]:
    """This control plane's processes by command name (their command lines name its files)."""
    found: dict[str, int] = {}
    marker = str(plane.kubeconfig.parent).encode()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes():
                comm = (proc / "comm").read_text().strip()
                if comm in names:
                    found[comm] = int(proc.name)
        except OSError:
            continue
    return found


class Bench:
    def __init__(
        self, plane: ControlPlane, emu: RunningEmulators, work: Path, operator_args: list[str]
    ) -> None:
        self.operator_args = operator_args
        self.kubectl = ["kubectl", "--kubeconfig", str(plane.kubeconfig)]
        self.plane, self.emu, self.work = plane, emu, work
        api = config.new_client_from_config(str(plane.kubeconfig))
        api.configuration.connection_pool_maxsize = 32
        self.custom = client.CustomObjectsApi(api)
        self.tm = EmulatorAdmin(emu.twinmaker_url)
        self.truto = EmulatorAdmin(emu.truto_url)
        self.relists = 0

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.kubectl, *args], input=stdin, text=True, check=True, capture_output=True
        )
        return done.stdout

    def writes(self) -> Counter[str]:
        """Writes to SyncJobs, Events and Secrets so far (apicounts.api_writes)."""
        return api_writes(self.run("get", "--raw", "/metrics"))

    def remote_calls(self) -> Counter[str]:
        calls: Counter[str] = Counter()
        for provider, admin in (("twinmaker", self.tm), ("truto", self.truto)):
            for op, count in admin.calls().operations.items():
                calls[f"{provider} {op}"] += count
        return calls

    def twinmaker_throttled(self) -> Counter[str]:
        """TwinMaker calls the emulator refused for their rate, by operation."""
        return Counter(self.tm.calls().throttled)

    def operator(self, resync: float) -> OperatorProcess:
        return OperatorProcess(
            kubeconfig=self.plane.kubeconfig,
            log_path=self.work / f"operator-{time.monotonic_ns()}.log",
            twinmaker_url=self.emu.twinmaker_url,
            truto_url=self.emu.truto_url,
            resync_seconds=resync,
            poll_seconds=1.0,
            extra_args=("--namespace", NAMESPACE, *self.operator_args),
        )

    def baseline(self, docs: str, total: int) -> dict[str, float]:
        started = time.monotonic()
        self.run("apply", "-n", BASELINE, "-f", "-", stdin=docs)
        applied = time.monotonic() - started
        names = [d["metadata"]["name"] for d in yaml.safe_load_all(docs) if d["kind"] == "SyncJob"]
        assert len(names) == total
        body = {"status": {"observedGeneration": 1}}
        started = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            list(
                pool.map(
                    lambda name: self.custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, BASELINE, PLURAL, name, body
                    ),
                    names,
                )
            )
        patched = time.monotonic() - started
        return {
            "kubectl_apply_seconds": round(applied, 1),
            "status_patch_each_32_way_seconds": round(patched, 1),
            "baseline_seconds": round(applied + patched, 1),
        }

    def writes_floor(self, docs: str, total: int) -> float:
        """Seconds until every SyncJob applied into FLOOR has had the operator's four writes from
        a 32-way client that learns of each from a watch (module docstring: floor)."""
        core = client.CoreV1Api(self.custom.api_client)
        applying = threading.Thread(
            target=lambda: self.run("apply", "-n", FLOOR, "-f", "-", stdin=docs)
        )
        started = time.monotonic()
        applying.start()
        with ThreadPoolExecutor(32) as pool:
            done = []
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                FLOOR,
                PLURAL,
                timeout_seconds=READY_DEADLINE_SECONDS,
            )
            for event in stream:
                if event["type"] == "ADDED":
                    done.append(pool.submit(self._operator_writes, core, event["object"]))
                    if len(done) == total:
                        break
            for future in done:
                future.result()
        applying.join()
        return time.monotonic() - started

    def peer(self, docs: str, total: int) -> dict[str, Any]:
        """The minimal kopf operator (hack/bench_peer.py) over the same objects in PEER: apply
        → all Ready, with its CPU and the API server's."""
        log = (self.work / "peer.log").open("w")
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}
        command = ["kopf", "run", str(PEER_OPERATOR), "--standalone", "--namespace", PEER]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(3)  # kopf lists and watches before the objects come
            processes = {**plane_pids(self.plane, "kube-apiserver", "etcd"), "peer": process.pid}
            cpu = {name: cpu_seconds(p) for name, p in processes.items()}
            writes = self.writes()
            started = time.monotonic()
            self.run("apply", "-n", PEER, "-f", "-", stdin=docs)
            for count in self.ready_stream(PEER):
                if count == total:
                    break
                if time.monotonic() - started > READY_DEADLINE_SECONDS:
                    raise SystemExit(f"peer: {count} of {total} SyncJobs Ready after the deadline")
            seconds = time.monotonic() - started
            used = {name: round(cpu_seconds(p) - cpu[name], 1) for name, p in processes.items()}
            return {
                "all_ready_seconds": round(seconds, 1),
                "api_writes_per_object": round(sum((self.writes() - writes).values()) / total, 2),
                "cpu_seconds": used,
                "peer_cpu_ms_per_syncjob": round(1000 * used["peer"] / total, 2),
            }
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()

    def _operator_writes(self, core: client.CoreV1Api, obj: dict[str, Any]) -> None:
        """One object's writes, built by the operator's own code where it builds them (the
        crash guard, the status); kopf's metadata patch and Event as kopf shapes them."""
        job = SyncJob.from_body(obj)
        now = datetime.datetime.now(datetime.UTC)
        remote_id = f"id-{job.uid}"

        def patch(body: dict[str, Any], **options: Any) -> None:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, FLOOR, PLURAL, job.name, body, **options
            )

        guard = crash_guard(job, PendingCreate(now, job.uid[:16]))
        patch(guard, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY_PATCH)
        annotations = {
            EXTERNAL_ID_ANNOTATION: remote_id,
            CREATE_PENDING_ANNOTATION: None,
            LAST_HANDLED: json.dumps({"spec": obj["spec"]}),
        }
        patch({"metadata": {"annotations": annotations}}, _content_type=MERGE_PATCH)
        observed = Observation(exists=True, remote_id=remote_id, state="ACTIVE", ready=True)
        status = compute_status(job, Outcome(observed, "created"), {}, now)
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, FLOOR, PLURAL, job.name, {"status": status}, _content_type=MERGE_PATCH
        )
        stamp = now.isoformat()
        core.create_namespaced_event(
            FLOOR,
            {
                "metadata": {"generateName": "kopf-event-"},
                "involvedObject": kopf.build_object_reference(kopf.Body(obj)),
                "reason": "Created",
                "message": f"remote job {remote_id} created",
                "type": "Normal",
                "source": {"component": "kopf"},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
            },
        )

    def ready_stream(self, namespace: str = NAMESPACE) -> Iterator[int]:
        """How many SyncJobs in `namespace` are Ready: after a list, then after each watch
        event from it.

        The API server closes a watch whose reader falls behind (the emulators share this
        process), and the client's stream then just ends: the count resumes from a new list,
        so it never stops short of the truth. `self.relists` counts those resumes.
        """
        while True:
            listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            ready = {o["metadata"]["name"] for o in listing["items"] if is_ready(o)}
            yield len(ready)
            stream = watch.Watch().stream(
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                resource_version=listing["metadata"]["resourceVersion"],
                timeout_seconds=600,
            )
            try:
                for event in stream:
                    name = event["object"]["metadata"]["name"]
                    if event["type"] != "DELETED" and is_ready(event["object"]):
                        ready.add(name)
                    else:
                        ready.discard(name)
                    yield len(ready)
            except client.ApiException as error:
                if error.status != 410:  # Gone: the list is too old to watch from; list again
                    raise
            self.relists += 1


def is_ready(obj: dict[str, Any]) -> bool:
    return condition_status(obj.get("status") or {}, READY) == "True"


def rate_limited(metrics: str) -> int:
    """The operator's Truto calls answered 429 (syncjob_remote_calls_total)."""
    pattern = (
        r'^syncjob_remote_calls_total\{[^}]*provider="Truto"[^}]*result="RateLimited"[^}]*\} (\S+)'
    )
    return int(sum(float(n) for n in re.findall(pattern, metrics, re.M)))


def throttled_calls(metrics: str) -> int:
    """The operator's calls refused for their rate (syncjob_throttled_calls_total)."""
    pattern = r"^syncjob_throttled_calls_total\{[^}]*\} (\S+)"
    return int(sum(float(n) for n in re.findall(pattern, metrics, re.M)))


def throttling(calls: Counter[str], throttled: Counter[str]) -> dict[str, Any]:
    """TwinMaker calls of a phase and the share the emulator throttled (0 with throttling off)."""
    total = sum(n for key, n in calls.items() if key.startswith("twinmaker "))
    return {
        "calls": total,
        "throttled": sum(throttled.values()),
        "throttled_percent": round(100 * sum(throttled.values()) / total, 2) if total else 0.0,
        "throttled_by_operation": dict(throttled),
    }


def per(counts: Counter[str], n: float) -> dict[str, float]:
    return {key: round(value / n, 3) for key, value in sorted(counts.items()) if value}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100, help="SyncJobs per provider")
    parser.add_argument("--resync-seconds", type=float, default=30)
    parser.add_argument("--steady-seconds", type=float, default=120)
    parser.add_argument("--soak-seconds", type=float, default=0)
    parser.add_argument(
        "--sync-progress-seconds",
        type=float,
        default=300,
        help="the operator's --sync-progress-seconds (its default: 300)",
    )
    parser.add_argument(
        "--operator-arg", action="append", default=[], help="passed to `syncjob-operator run`"
    )
    parser.add_argument(
        "--truto-rate-limit",
        type=int,
        default=None,
        help="requests per token per --truto-rate-window the Truto emulator allows (429 beyond)",
    )
    parser.add_argument("--truto-rate-window", type=float, default=10.0)
    parser.add_argument(
        "--twinmaker-throttling",
        action="store_true",
        help="the TwinMaker emulator enforces its per-account, per-operation request rates",
    )
    args = parser.parse_args()
    total = 2 * args.jobs
    scopes = args.jobs + INTEGRATIONS  # a workspace per TwinMaker job, an integration per 10th
    report: dict[str, Any] = {"syncjobs": total, "scopes": scopes, "args": vars(args)}
    work = Path(tempfile.mkdtemp(prefix="syncjob-bench-"))
    with (
        ControlPlane() as plane,
        RunningEmulators(
            # A workspace per TwinMaker job: above AWS's default quota of 1,000 when asked.
            TwinMakerConfig(
                transition_seconds=0.5,
                max_workspaces=max(1000, args.jobs),
                throttling=args.twinmaker_throttling,
                # The set-up's workspaces are not under test: only the operator's calls are.
                request_rates={
                    **DEFAULT_REQUEST_RATES,
                    "CreateWorkspace": RequestRate(per_second=10_000, burst=10_000),
                },
            ),
            TrutoConfig(
                tokens=frozenset({"t"}),
                rate_limit=args.truto_rate_limit,
                rate_limit_window_seconds=args.truto_rate_window,
            ),
        ) as emu,
    ):
        operator_args = ["--sync-progress-seconds", str(args.sync_progress_seconds)]
        bench = Bench(plane, emu, work, [*operator_args, *args.operator_arg])
        twinmaker = twinmaker_client(emu.twinmaker_url)
        for w in range(args.jobs):  # TwinMaker has one SITEWISE job per workspace
            twinmaker.create_workspace(workspaceId=f"ws{w}")
        bench.run("apply", "-f", str(CRDS_DIR))
        bench.run("wait", "--for=condition=Established", "crd/syncjobs.syncjob.dev")
        for namespace in (NAMESPACE, BASELINE, FLOOR, PEER):
            bench.run("create", "namespace", namespace)
        docs = manifests(args.jobs)
        report["baseline"] = bench.baseline(docs, total)
        writes = bench.writes()
        floor = bench.writes_floor(docs, total)
        report["writes_floor"] = {
            "seconds": round(floor, 1),
            "ratio_to_baseline": round(floor / report["baseline"]["baseline_seconds"], 2),
            "api_writes_per_object_by_kind": per(bench.writes() - writes, total),
        }

        report["peer"] = bench.peer(docs, total)

        operator = bench.operator(args.resync_seconds)
        operator.start()
        pid = operator.pid
        report["operator_rss_mib_empty"] = round(rss_mib(pid), 1)
        peak = [rss_mib(pid)]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                peak[0] = max(peak[0], rss_mib(pid))

        threading.Thread(target=sample, daemon=True).start()
        writes, calls = bench.writes(), bench.remote_calls()
        throttled = bench.twinmaker_throttled()
        # CPU by process during the burst: the emulators run in this process.
        processes = {
            **plane_pids(plane, "kube-apiserver", "etcd"),
            "operator": pid,
            "emulators+bench": os.getpid(),
        }
        cpu = {name: cpu_seconds(p) for name, p in processes.items()}
        started = time.monotonic()
        bench.run("apply", "-n", NAMESPACE, "-f", "-", stdin=docs)
        for count in bench.ready_stream():
            if count == total:
                break
            if time.monotonic() - started > READY_DEADLINE_SECONDS:
                raise SystemExit(f"{count} of {total} SyncJobs Ready after the deadline")
        ready_seconds = time.monotonic() - started
        ready_writes = bench.writes() - writes
        ready_calls = bench.remote_calls() - calls
        cpu = {name: round(cpu_seconds(p) - cpu[name], 1) for name, p in processes.items()}
        report["ready"] = {
            "all_ready_seconds": round(ready_seconds, 1),
            "ready_per_second": round(total / ready_seconds, 1),
            "ratio_to_baseline": round(ready_seconds / report["baseline"]["baseline_seconds"], 2),
            "api_writes_per_object": round(sum(ready_writes.values()) / total, 2),
            "operator_api_writes_per_object": round(operator_writes(ready_writes) / total, 2),
            "api_writes_per_object_by_kind": per(ready_writes, total),
            "remote_calls_per_object": round(sum(ready_calls.values()) / total, 2),
            "remote_calls_per_object_by_kind": per(ready_calls, total),
            "operator_rss_mib_peak": round(peak[0], 1),
            "cpu_seconds_by_process": cpu,
            "operator_cpu_ms_per_syncjob": round(1000 * cpu["operator"] / total, 2),
            # Every Truto job shares the token "t": one budget (providers/ratelimit.py).
            "truto_429s": rate_limited(operator.metrics()),
            # Watches the API server closed under the load; each resumed from a new list.
            "ready_watch_relists": bench.relists,
            "twinmaker_throttling": throttling(
                ready_calls, bench.twinmaker_throttled() - throttled
            ),
            "operator_throttled_calls": throttled_calls(operator.metrics()),
        }
        writes, calls = bench.writes(), bench.remote_calls()
        started = time.monotonic()
        deadline = started + READY_DEADLINE_SECONDS
        # Counted in drift passes, not periods: at 10,000 objects a pass outlasts a period. A
        # whole pass sees every job and spreads its first progress read over one progress
        # period; a whole pass after that period makes the last of those reads.
        settled = wait_for_drift_passes(operator, 2, deadline)
        time.sleep(args.sync_progress_seconds)
        if not (settled and wait_for_drift_passes(operator, 2, deadline)):
            raise SystemExit("the drift passes did not complete before the deadline")
        settle_writes = bench.writes() - writes
        report["settle"] = {
            "seconds": round(time.monotonic() - started, 1),
            # A first syncProgress read is a real change of status: one write per TwinMaker job.
            "api_writes": dict(settle_writes),
            "remote_calls_by_kind": dict(bench.remote_calls() - calls),
        }
        writes, calls = bench.writes(), bench.remote_calls()
        throttled = bench.twinmaker_throttled()
        time.sleep(args.steady_seconds)
        periods = args.steady_seconds / args.resync_seconds
        steady_writes = bench.writes() - writes
        steady_calls = bench.remote_calls() - calls
        report["steady"] = {
            "seconds": args.steady_seconds,
            "api_writes": dict(steady_writes),
            "api_writes_per_object_per_minute": round(
                sum(steady_writes.values()) / total / (args.steady_seconds / 60), 4
            ),
            "remote_calls_per_scope_per_period": round(
                sum(steady_calls.values()) / scopes / periods, 2
            ),
            "remote_calls_by_kind": dict(steady_calls),
            "twinmaker_throttling": throttling(
                steady_calls, bench.twinmaker_throttled() - throttled
            ),
            "operator_rss_mib": round(rss_mib(pid), 1),
        }
        sampling.set()
        operator.stop()

        writes, calls = bench.writes(), bench.remote_calls()
        operator = bench.operator(args.resync_seconds)
        started = time.monotonic()
        operator.start(ready_timeout=600)
        ready_after = time.monotonic() - started
        # The resume of every object, then one whole drift pass: at 10,000 objects kopf takes
        # longer than a resync period to index them all, and does nothing before.
        wait_for_drift_passes(operator, 1, started + 20 * args.resync_seconds)
        restart_calls = bench.remote_calls() - calls
        report["restart"] = {
            "operator_ready_seconds": round(ready_after, 1),
            "first_drift_pass_done_seconds": round(time.monotonic() - started, 1),
            "drift_passes": drift_passes(operator.metrics()),
            "api_writes": dict(bench.writes() - writes),
            "remote_calls": dict(restart_calls),
            "operator_rss_mib": round(rss_mib(operator.pid), 1),
        }
        if args.soak_seconds:
            samples: list[float] = []
            deadline = time.monotonic() + args.soak_seconds
            writes = bench.writes()
            while time.monotonic() < deadline:
                samples.append(rss_mib(operator.pid))
                time.sleep(10)
            report["soak"] = {
                "seconds": args.soak_seconds,
                "drift_passes": drift_passes(operator.metrics()),
                "rss_mib_first": round(samples[0], 1),
                "rss_mib_last": round(samples[-1], 1),
                "rss_mib_min": round(min(samples), 1),
                "rss_mib_max": round(max(samples), 1),
                # Flatness: the range as a share of the first sample, and the curve (5 minutes).
                "rss_range_percent_of_first": round(
                    (max(samples) - min(samples)) / samples[0] * 100, 1
                ),
                "rss_mib_every_5_minutes": [round(v, 1) for v in samples[::30]],
                "api_writes": dict(bench.writes() - writes),
            }
        operator.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
