"""A bounded chaos run: many SyncJobs applied at once, faults on both emulators (errors and
latency before the operation, and writes that take effect but fail: a 5xx, a reset connection,
an answer slower than the operator's timeout), the operator SIGKILLed again and again while
they converge, while every spec changes, and while they are deleted.

The verdict is taken from the remote side: the jobs the emulators hold, listed per Truto
integration and per TwinMaker workspace, are compared with the SyncJobs and their status ids.
Used by ``tests/e2e/test_chaos.py`` (small, bounded) and ``hack/chaos.py`` (the larger run).

Everything this module creates is named after a per-run id (namespace, Truto integrations,
TwinMaker workspaces), so shared emulators can be counted without other tests' jobs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions
import httpx
import yaml

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from syncjob_operator.providers.base import READ_TIMEOUT_SECONDS
from tests.support.kube import Cli

if TYPE_CHECKING:
    from mypy_boto3_iottwinmaker import IoTTwinMakerClient

logger = logging.getLogger(__name__)

T = TypeVar("T")

ROLE = "arn:aws:iam::123456789012:role/TwinMakerSync"
SECRET = "truto-token"
SYNC_SOURCE = "SITEWISE"
# The one Truto spec every job of an integration shares: nothing tells two of them apart
# but their Kubernetes identity, which is what makes crash recovery by content hard.
TRUTO_ARGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"since": {"type": "string"}},
}
TRUTO_RESOURCES: list[dict[str, Any]] = [{"resource": "crm/contacts", "method": "list"}]
# The spec change of the update phase: one more Truto resource (a PATCH), one more TwinMaker tag
# (TagResource).
UPDATED_TRUTO_RESOURCES = [*TRUTO_RESOURCES, {"resource": "crm/companies", "method": "list"}]
UPDATED_TAGS = {"chaos-phase": "updated"}
# The writes that post-commit faults hit, by emulator.
WRITE_OPERATIONS = {
    "twinmaker": ("CreateSyncJob", "TagResource", "UntagResource", "DeleteSyncJob"),
    "truto": ("CreateSyncJob", "UpdateSyncJob", "DeleteSyncJob"),
}
# Remote calls whose deltas the report shows (both emulators name them alike).
REPORTED_OPERATIONS = (
    "CreateSyncJob",
    "GetSyncJob",
    "ListSyncJobs",
    "UpdateSyncJob",
    "DeleteSyncJob",
)
LISTED_NAMES = 20  # names shown per list in the report; counts are always complete


@dataclass(frozen=True)
class ChaosParams:
    """What to run. Deadlines are wall-clock seconds from the apply / from the delete."""

    jobs: int = 100
    truto_share: float = 0.6
    integrations: int = 3
    kills_create: int = 10
    kills_update: int = 5
    kills_delete: int = 5
    kill_interval: tuple[float, float] = (0.5, 4.0)
    resync_seconds: float = 5.0
    poll_seconds: float = 0.3
    error_rate: float = 0.1
    latency_ms: int = 150
    # Share of each write that takes effect and then fails, split evenly between a 5xx, a reset
    # connection and an answer held past the operator's read timeout.
    post_commit_rate: float = 0.06
    slow_response_ms: int = int(READ_TIMEOUT_SECONDS * 1000) + 2000
    # Retries of the injected 5xx wait at most this long: with the default cap (60 s) a streak
    # of five or six failures in one deletion (10% of calls fail; seen once in CI, 2026-12-02)
    # outlasts the deadlines below, which measure ownership, not backoff.
    retry_backoff_cap_seconds: float = 8.0
    converge_timeout: float = 150.0
    update_timeout: float = 90.0
    delete_timeout: float = 90.0
    # After all are Ready, wait this long before counting remote jobs: a create sent just
    # before a SIGKILL still lands (the emulator's latency runs before the operation).
    settle_seconds: float = 3.0
    # After the last SyncJob is gone, how long remote jobs may take to disappear (TwinMaker
    # answers DeleteSyncJob with DELETING and drops the job one transition later).
    remote_delete_grace: float = 5.0
    list_interval: float = 1.0
    operator_ready_timeout: float = 30.0
    seed: int | None = None
    # Stop leaving finalizers behind: strip them from what is left, delete the namespace and
    # the (empty) workspaces. Off to inspect a failed run by hand.
    cleanup: bool = True

    def __post_init__(self) -> None:
        if self.jobs < 1 or not 0.0 <= self.truto_share <= 1.0 or self.integrations < 1:
            raise ValueError("need jobs >= 1, 0 <= truto_share <= 1 and integrations >= 1")
        low, high = self.kill_interval
        if not 0 < low <= high:
            raise ValueError("kill_interval must be (low, high) with 0 < low <= high")
        if self.slow_response_ms <= READ_TIMEOUT_SECONDS * 1000:
            raise ValueError(
                f"slow_response_ms must exceed the operator's timeout, {READ_TIMEOUT_SECONDS} s"
            )

    @property
    def truto_jobs(self) -> int:
        return round(self.jobs * self.truto_share)

    @property
    def twinmaker_jobs(self) -> int:
        return self.jobs - self.truto_jobs


@dataclass
class RemoteCounts:
    """Remote jobs in this run's scopes, as the emulators list them."""

    truto_per_integration: dict[str, int] = field(default_factory=dict)
    twinmaker_per_workspace: dict[str, int] = field(default_factory=dict)
    twinmaker_states: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)  # Truto ids and TwinMaker ARNs
    truto_resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by id

    @property
    def truto(self) -> int:
        return sum(self.truto_per_integration.values())

    @property
    def twinmaker(self) -> int:
        return sum(self.twinmaker_per_workspace.values())


@dataclass
class UpdateReport:
    """The spec change applied to every SyncJob once all were Ready, under kills and faults."""

    kills: int = 0
    updated: int = 0  # SyncJobs Ready at their new generation
    not_updated: dict[str, str] = field(default_factory=dict)  # name: its conditions
    seconds_to_all_updated: float | None = None
    distinct_remote_ids: int = 0
    truto_remote_per_integration: dict[str, int] = field(default_factory=dict)
    twinmaker_remote_jobs: int = 0
    remote_with_old_content: list[str] = field(default_factory=list)
    status_ids_missing_remotely: list[str] = field(default_factory=list)
    remote_ids_unreferenced: list[str] = field(default_factory=list)


@dataclass
class ChaosReport:
    run_id: str
    seed: int
    namespace: str
    log_path: str
    params: dict[str, Any]
    applied: int = 0
    applied_truto: int = 0
    applied_twinmaker: int = 0
    ready: int = 0
    not_ready: dict[str, str] = field(default_factory=dict)  # name: Ready reason/message
    distinct_remote_ids: int = 0
    without_remote_id: list[str] = field(default_factory=list)
    shared_remote_ids: dict[str, list[str]] = field(default_factory=dict)  # id: SyncJobs
    expected_truto_per_integration: dict[str, int] = field(default_factory=dict)
    truto_remote_per_integration: dict[str, int] = field(default_factory=dict)
    truto_remote_jobs: int = 0
    twinmaker_remote_jobs: int = 0
    twinmaker_workspaces_not_one_job: dict[str, int] = field(default_factory=dict)
    twinmaker_remote_states: dict[str, int] = field(default_factory=dict)
    status_ids_missing_remotely: list[str] = field(default_factory=list)
    remote_ids_unreferenced: list[str] = field(default_factory=list)
    terminal: dict[str, str] = field(default_factory=dict)  # name: Terminal message
    seconds_to_first_all_ready: float | None = None
    seconds_to_all_ready: float | None = None
    kills_create: int = 0
    kills_delete: int = 0
    update: UpdateReport = field(default_factory=UpdateReport)
    operator_starts: int = 0
    operator_start_failures: list[str] = field(default_factory=list)
    operator_exited_by_itself: int = 0
    remaining_syncjobs_after_delete: int | None = None
    left_after_delete: dict[str, str] = field(default_factory=dict)  # name: its conditions
    remaining_remote_after_delete: dict[str, int] = field(default_factory=dict)
    seconds_to_deletion_done: float | None = None
    remote_calls: dict[str, dict[str, int]] = field(default_factory=dict)
    # Failures the faults injected, by emulator and kind, all operations together.
    injected_faults: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds_total: float = 0.0
    error: str | None = None  # the harness's own failure, if any (the run stopped early)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def log_tail(path: Path | str, lines: int = 60) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_chaos(
    plane: ControlPlane,
    emulators: RunningEmulators,
    twinmaker_admin: EmulatorAdmin,
    truto_admin: EmulatorAdmin,
    *,
    truto_token: str,
    log_dir: Path,
    params: ChaosParams | None = None,
    kubectl: Cli | None = None,
) -> ChaosReport:
    """Run one chaos round and return what happened; never raises for the operator's faults.

    Needs the SyncJob CRD installed in ``plane`` and ``truto_token`` accepted by the Truto
    emulator. The operator's log (every process, appended) is ``log_dir/operator.log``, the
    report also goes to ``log_dir/report.json``.
    ``kubectl`` defaults to kubectl with ``plane.env()``.
    """
    run = _ChaosRun(
        plane,
        emulators,
        twinmaker_admin,
        truto_admin,
        truto_token=truto_token,
        log_dir=log_dir,
        params=params or ChaosParams(),
        kubectl=kubectl or Cli("kubectl", plane.env()),
    )
    return run.run()


class _ChaosRun:
    def __init__(
        self,
        plane: ControlPlane,
        emulators: RunningEmulators,
        twinmaker_admin: EmulatorAdmin,
        truto_admin: EmulatorAdmin,
        *,
        truto_token: str,
        log_dir: Path,
        params: ChaosParams,
        kubectl: Cli,
    ) -> None:
        self.plane = plane
        self.emulators = emulators
        self.admins = {"twinmaker": twinmaker_admin, "truto": truto_admin}
        self.token = truto_token
        self.params = params
        self.kubectl = kubectl
        run_id = uuid.uuid4().hex[:6]
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
        self.random = random.Random(seed)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "operator.log"
        self.namespace = f"chaos-{run_id}"
        self.integrations = [f"chaos-{run_id}-crm{i}" for i in range(params.integrations)]
        self.workspaces = [f"chaos-{run_id}-ws{i}" for i in range(params.twinmaker_jobs)]
        self.report = ChaosReport(
            run_id=run_id,
            seed=seed,
            namespace=self.namespace,
            log_path=str(self.log_path),
            params=asdict(params),
        )
        self.processes: list[_ChaosOperator] = []
        self.current: _ChaosOperator | None = None
        self.fault_ids: list[tuple[EmulatorAdmin, str]] = []
        self.applied_at = 0.0

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> ChaosReport:
        started = time.monotonic()
        calls_before = self._call_counts()
        # Kept across runs on shared emulators: this run's are the difference.
        injected_before = self._injected_counts()
        twinmaker = twinmaker_client(self.emulators.twinmaker_url)
        with httpx.Client(
            base_url=self.emulators.truto_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        ) as truto:
            try:
                self._create_workspaces(twinmaker)
                self._inject_faults()
                self._converge()
                self._count_after_converge(twinmaker, truto)
                self._update()
                self._count_after_update(twinmaker, truto)
                self._delete()
                self._count_after_delete(twinmaker, truto)
            except Exception as exc:  # the harness's failure: keep what was measured so far
                logger.exception("chaos run stopped early")
                self.report.error = f"{type(exc).__name__}: {exc}"
            finally:
                self._stop_operators()
                self._clear_faults()
                if self.params.cleanup:
                    self._cleanup(twinmaker)
        self.report.remote_calls = self._call_deltas(calls_before)
        with contextlib.suppress(Exception):  # the report matters more than these figures
            after = self._injected_counts()
            self.report.injected_faults = {
                name: {k: n - injected_before[name].get(k, 0) for k, n in kinds.items()}
                for name, kinds in after.items()
            }
        self.report.seconds_total = round(time.monotonic() - started, 1)
        self.report.problems = self._verdict()
        (self.log_path.parent / "report.json").write_text(self.report.to_json() + "\n")
        return self.report

    def _create_workspaces(self, twinmaker: IoTTwinMakerClient) -> None:
        # Before any fault: nothing here is under test.
        for workspace in self.workspaces:
            twinmaker.create_workspace(workspaceId=workspace)

    def _inject_faults(self) -> None:
        p = self.params
        post_commit: list[dict[str, Any]] = [
            {"status": 500, "after_commit": True},
            {"drop_connection": True, "after_commit": True},
            {"response_delay_ms": p.slow_response_ms},
        ]
        for name, admin in self.admins.items():
            if p.error_rate > 0:
                fault = admin.inject_fault("*", error_rate=p.error_rate, status=500)
                self.fault_ids.append((admin, fault.id))
            if p.latency_ms > 0:
                fault = admin.inject_fault("*", latency_ms=p.latency_ms)
                self.fault_ids.append((admin, fault.id))
            for operation in WRITE_OPERATIONS[name] if p.post_commit_rate > 0 else ():
                for mode in post_commit:
                    rate = p.post_commit_rate / len(post_commit)
                    fault = admin.inject_fault(operation, error_rate=rate, **mode)
                    self.fault_ids.append((admin, fault.id))

    def _converge(self) -> None:
        self.kubectl.run("create", "namespace", self.namespace)
        self._start_operator(time.monotonic() + self.params.converge_timeout)
        manifest = self._manifest()
        self.applied_at = time.monotonic()
        deadline = self.applied_at + self.params.converge_timeout
        self.kubectl.run("apply", "-n", self.namespace, "-f", "-", stdin=manifest)
        self.report.applied = self.params.jobs
        self.report.applied_truto = self.params.truto_jobs
        self.report.applied_twinmaker = self.params.twinmaker_jobs

        def note_ready(items: list[dict[str, Any]]) -> bool:
            ready = sum(_is_ready(item) for item in items) == self.params.jobs
            if ready and self.report.seconds_to_first_all_ready is None:
                self.report.seconds_to_first_all_ready = self._since_apply()
            return ready

        self.report.kills_create = self._kill_repeatedly(
            self.params.kills_create, deadline, note_ready, "create"
        )
        # One operator, left alone, until every SyncJob is Ready.
        self._ensure_operator(deadline)
        if self._poll_until(deadline, note_ready, deadline):
            self.report.seconds_to_all_ready = self._since_apply()

    def _count_after_converge(self, twinmaker: IoTTwinMakerClient, truto: httpx.Client) -> None:
        if self.params.settle_seconds > 0:
            time.sleep(self.params.settle_seconds)
        items = self._list_syncjobs()
        remote = self._remote_counts(twinmaker, truto)
        report = self.report
        report.ready = sum(_is_ready(item) for item in items)
        report.not_ready = _first({_name(i): _summary(i) for i in items if not _is_ready(i)})
        report.terminal = {
            _name(item): _condition_message(item, "Terminal")
            for item in items
            if _condition_status(item, "Terminal") == "True"
        }
        ids = _status_ids(items)
        report.without_remote_id = sorted(_name(item) for item in items if not _status_id(item))[
            :LISTED_NAMES
        ]
        report.distinct_remote_ids = len(ids)
        report.shared_remote_ids = _first({i: n for i, n in ids.items() if len(n) > 1})
        report.expected_truto_per_integration = self._expected_per_integration()
        report.truto_remote_per_integration = remote.truto_per_integration
        report.truto_remote_jobs = remote.truto
        report.twinmaker_remote_jobs = remote.twinmaker
        report.twinmaker_remote_states = remote.twinmaker_states
        report.twinmaker_workspaces_not_one_job = _first(
            {ws: n for ws, n in remote.twinmaker_per_workspace.items() if n != 1}
        )
        report.status_ids_missing_remotely, report.remote_ids_unreferenced = _unmatched(ids, remote)

    def _update(self) -> None:
        """Change every spec at once (a PATCH per Truto job, a TagResource per TwinMaker job)
        and kill the operator while it catches up."""
        started = time.monotonic()
        deadline = started + self.params.update_timeout
        self.kubectl.run("apply", "-n", self.namespace, "-f", "-", stdin=self._manifest(True))

        def updated(items: list[dict[str, Any]]) -> bool:
            return sum(_is_ready_at_generation(item) for item in items) == self.params.jobs

        self.report.update.kills = self._kill_repeatedly(
            self.params.kills_update, deadline, updated, "update"
        )
        self._ensure_operator(deadline)
        if self._poll_until(deadline, updated, deadline):
            self.report.update.seconds_to_all_updated = round(time.monotonic() - started, 1)

    def _count_after_update(self, twinmaker: IoTTwinMakerClient, truto: httpx.Client) -> None:
        time.sleep(self.params.settle_seconds)
        items = self._list_syncjobs()
        remote = self._remote_counts(twinmaker, truto)
        ids = _status_ids(items)
        update = self.report.update
        update.updated = sum(_is_ready_at_generation(item) for item in items)
        update.not_updated = _first(
            {_name(i): _summary(i) for i in items if not _is_ready_at_generation(i)}
        )
        update.distinct_remote_ids = len(ids)
        update.truto_remote_per_integration = remote.truto_per_integration
        update.twinmaker_remote_jobs = remote.twinmaker
        update.status_ids_missing_remotely, update.remote_ids_unreferenced = _unmatched(ids, remote)
        arns = [i for i in remote.ids if i.startswith("arn:")]
        with ThreadPoolExecutor(max_workers=8) as pool:
            tags = dict(
                zip(arns, pool.map(lambda arn: _twinmaker_tags(twinmaker, arn), arns), strict=True)
            )
        wanted = [r["resource"] for r in UPDATED_TRUTO_RESOURCES]
        old = [
            i for i, res in remote.truto_resources.items() if [r["resource"] for r in res] != wanted
        ]
        old += [arn for arn, t in tags.items() if not UPDATED_TAGS.items() <= t.items()]
        update.remote_with_old_content = sorted(old)[:LISTED_NAMES]

    def _delete(self) -> None:
        started = time.monotonic()
        deadline = started + self.params.delete_timeout
        self.kubectl.run("delete", "syncjobs", "--all", "-n", self.namespace, "--wait=false")

        def gone(items: list[dict[str, Any]]) -> bool:
            return not items

        self.report.kills_delete = self._kill_repeatedly(
            self.params.kills_delete, deadline, gone, "delete"
        )
        self._ensure_operator(deadline)
        if self._poll_until(deadline, gone, deadline):
            self.report.seconds_to_deletion_done = round(time.monotonic() - started, 1)
        left = self._list_syncjobs()
        self.report.remaining_syncjobs_after_delete = len(left)
        self.report.left_after_delete = _first({_name(i): _summary(i) for i in left})

    def _count_after_delete(self, twinmaker: IoTTwinMakerClient, truto: httpx.Client) -> None:
        grace = time.monotonic() + self.params.remote_delete_grace
        while True:
            remote = self._remote_counts(twinmaker, truto)
            if (remote.truto == 0 and remote.twinmaker == 0) or time.monotonic() >= grace:
                break
            time.sleep(0.5)
        self.report.remaining_remote_after_delete = {
            "truto": remote.truto,
            "twinmaker": remote.twinmaker,
        }

    # -- the operator ----------------------------------------------------------------------

    def _kill_repeatedly(
        self,
        kills: int,
        deadline: float,
        observe: Callable[[list[dict[str, Any]]], bool],
        phase: str,
    ) -> int:
        done = 0
        low, high = self.params.kill_interval
        while done < kills and time.monotonic() < deadline:
            self._ensure_operator(deadline)
            wait_until = min(time.monotonic() + self.random.uniform(low, high), deadline)
            self._poll_until(wait_until, observe, deadline, stop_when_true=False)
            if time.monotonic() >= deadline:
                break
            if self.current is not None:
                self.current.kill()
                done += 1
                self._mark(f"SIGKILL {done}/{kills} during {phase}")
                self.current = None
            self._start_operator(deadline)
        return done

    def _ensure_operator(self, deadline: float) -> None:
        """Restart the operator if it is not running (never started, or exited by itself)."""
        if self.current is not None and self.current.running():
            return
        if self.current is not None:
            self.report.operator_exited_by_itself += 1
            self._mark("the operator exited by itself; restarting it")
            self.current = None
        self._start_operator(deadline)

    def _start_operator(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            process = _ChaosOperator(
                kubeconfig=self.plane.kubeconfig,
                log_path=self.log_path,
                twinmaker_url=self.emulators.twinmaker_url,
                truto_url=self.emulators.truto_url,
                resync_seconds=self.params.resync_seconds,
                poll_seconds=self.params.poll_seconds,
                extra_args=(
                    f"--retry-backoff-cap-seconds={self.params.retry_backoff_cap_seconds}",
                ),
            )
            self.processes.append(process)
            timeout = max(1.0, min(self.params.operator_ready_timeout, deadline - time.monotonic()))
            try:
                process.start(ready_timeout=timeout)
            except RuntimeError as exc:
                process.kill()  # not ready in time: do not leave it running
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.report.operator_start_failures.append(first_line)
                self._mark(f"operator start failed: {first_line}")
                continue
            self.report.operator_starts += 1
            self.current = process
            return

    def _stop_operators(self) -> None:
        for process in self.processes:
            try:
                process.stop()
            except Exception:  # never let one stuck process keep the others running
                logger.exception("stopping operator pid %s", process.pid)
                process.kill()
        self.current = None

    def _mark(self, text: str) -> None:
        """A line in the operator log between processes, to read the log by phase."""
        stamp = f"{self._since_apply():7.1f}s" if self.applied_at else "  setup"
        with self.log_path.open("a") as log:
            log.write(f"===== chaos {stamp}: {text} =====\n")

    # -- Kubernetes ------------------------------------------------------------------------

    def _manifest(self, updated: bool = False) -> str:
        docs: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET},
                "stringData": {"token": self.token},
            }
        ]
        for i in range(self.params.truto_jobs):
            spec = {
                "truto": {
                    "integrationName": self.integrations[i % len(self.integrations)],
                    "tokenSecretRef": {"name": SECRET, "key": "token"},
                    "argsSchema": TRUTO_ARGS_SCHEMA,
                    "resources": UPDATED_TRUTO_RESOURCES if updated else TRUTO_RESOURCES,
                }
            }
            docs.append(_syncjob(f"truto-{i:03d}", spec))
        for i, workspace in enumerate(self.workspaces):
            spec = {
                "awsIoTTwinMaker": {
                    "region": "us-east-1",
                    "workspaceId": workspace,
                    "syncSource": SYNC_SOURCE,
                    "syncRole": ROLE,
                }
                | ({"tags": UPDATED_TAGS} if updated else {})
            }
            docs.append(_syncjob(f"twin-{i:03d}", spec))
        return yaml.safe_dump_all(docs)

    def _expected_per_integration(self) -> dict[str, int]:
        expected = dict.fromkeys(self.integrations, 0)
        for i in range(self.params.truto_jobs):
            expected[self.integrations[i % len(self.integrations)]] += 1
        return expected

    def _list_syncjobs(self) -> list[dict[str, Any]]:
        listed = self.kubectl.json("get", "syncjobs", "-n", self.namespace)
        items: list[dict[str, Any]] = listed["items"]
        return items

    def _poll_until(
        self,
        until: float,
        observe: Callable[[list[dict[str, Any]]], bool],
        deadline: float,
        *,
        stop_when_true: bool = True,
    ) -> bool:
        """List SyncJobs about every ``list_interval`` until ``until``; True once ``observe``
        said so (at once if ``stop_when_true``). A listing that could overrun ``until`` by
        much is skipped, so that kills land on time."""
        seen = False
        while True:
            now = time.monotonic()
            if now >= min(until, deadline):
                return seen
            if until - now > 0.5 or stop_when_true:
                seen = observe(self._list_syncjobs()) or seen
                if seen and stop_when_true:
                    return True
            time.sleep(max(0.0, min(self.params.list_interval, until - time.monotonic())))

    def _since_apply(self) -> float:
        return round(time.monotonic() - self.applied_at, 1)

    # -- the emulators ---------------------------------------------------------------------

    def _remote_counts(self, twinmaker: IoTTwinMakerClient, truto: httpx.Client) -> RemoteCounts:
        counts = RemoteCounts()
        for integration in self.integrations:
            jobs = _truto_jobs(truto, integration)
            counts.truto_per_integration[integration] = len(jobs)
            counts.ids.extend(str(job["id"]) for job in jobs)
            counts.truto_resources.update({str(job["id"]): job["resources"] for job in jobs})
        with ThreadPoolExecutor(max_workers=8) as pool:
            listed = list(pool.map(lambda ws: _twinmaker_jobs(twinmaker, ws), self.workspaces))
        for workspace, summaries in zip(self.workspaces, listed, strict=True):
            counts.twinmaker_per_workspace[workspace] = len(summaries)
            for summary in summaries:
                counts.ids.append(str(summary["arn"]))
                state = str(summary.get("status", {}).get("state", "UNKNOWN"))
                counts.twinmaker_states[state] = counts.twinmaker_states.get(state, 0) + 1
        return counts

    def _call_counts(self) -> dict[str, dict[str, int]]:
        return {name: admin.calls().operations for name, admin in self.admins.items()}

    def _injected_counts(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = {}
        for name, admin in self.admins.items():
            kinds: Counter[str] = Counter()
            for counts in admin.calls().injected.values():
                kinds.update(counts)
            totals[name] = dict(sorted(kinds.items()))
        return totals

    def _call_deltas(self, before: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
        try:
            after = self._call_counts()
        except Exception as exc:  # the report matters more than these figures
            logger.warning("cannot read the emulators' call counts: %s", exc)
            return {}
        return {
            name: {
                op: after[name].get(op, 0) - before[name].get(op, 0)
                for op in REPORTED_OPERATIONS
                if after[name].get(op, 0) - before[name].get(op, 0)
            }
            for name in after
        }

    def _clear_faults(self) -> None:
        for admin, fault_id in self.fault_ids:
            try:
                admin.remove_fault(fault_id)
            except Exception as exc:  # gone already (next_n) or the emulator stopped
                logger.warning("cannot remove fault %s: %s", fault_id, exc)
        self.fault_ids.clear()

    def _cleanup(self, twinmaker: IoTTwinMakerClient) -> None:
        """Leave nothing that blocks: finalizers (no operator is left to honour them), the
        namespace, and the workspaces that are empty by now."""
        try:
            for kind in ("syncjobs", "secrets"):
                listed = self.kubectl.json("get", kind, "-n", self.namespace)
                for item in listed["items"]:
                    if item["metadata"].get("finalizers"):
                        self.kubectl.run(
                            "patch",
                            *(kind, _name(item), "-n", self.namespace, "--type=merge"),
                            *("-p", '{"metadata":{"finalizers":null}}'),
                            check=False,
                        )
            self.kubectl.run("delete", "namespace", self.namespace, "--wait=false", check=False)
        except Exception as exc:
            logger.warning("cannot clean up namespace %s: %s", self.namespace, exc)
        for workspace in self.workspaces:
            # One that still holds a job is a leak the report already shows: keep it.
            with contextlib.suppress(botocore.exceptions.ClientError):
                twinmaker.delete_workspace(workspaceId=workspace)

    # -- the verdict -----------------------------------------------------------------------

    def _verdict(self) -> list[str]:
        r, p = self.report, self.params
        problems: list[str] = []
        if r.error:
            problems.append(f"the run stopped early: {r.error}")
        if r.kills_create < p.kills_create or r.kills_delete < p.kills_delete:
            problems.append(
                f"kills done {r.kills_create}+{r.kills_delete} of "
                f"{p.kills_create}+{p.kills_delete} before the deadlines"
            )
        if r.ready != r.applied:
            problems.append(f"{r.ready} of {r.applied} SyncJobs Ready")
        if r.distinct_remote_ids != r.applied:
            problems.append(f"{r.distinct_remote_ids} distinct remote ids for {r.applied}")
        wrong = {
            name: (r.truto_remote_per_integration.get(name, 0), n)
            for name, n in r.expected_truto_per_integration.items()
            if r.truto_remote_per_integration.get(name, 0) != n
        }
        if wrong:
            problems.append(f"Truto remote jobs (found, expected) per integration: {wrong}")
        if r.twinmaker_remote_jobs != r.applied_twinmaker or r.twinmaker_workspaces_not_one_job:
            problems.append(
                f"{r.twinmaker_remote_jobs} TwinMaker remote jobs for {r.applied_twinmaker}"
            )
        if r.status_ids_missing_remotely:
            problems.append(f"status ids with no remote job: {r.status_ids_missing_remotely}")
        if r.remote_ids_unreferenced:
            problems.append(f"remote jobs no SyncJob refers to: {r.remote_ids_unreferenced}")
        if r.terminal:
            problems.append(f"{len(r.terminal)} SyncJobs Terminal")
        problems += self._update_verdict()
        if r.remaining_syncjobs_after_delete != 0:
            problems.append(f"{r.remaining_syncjobs_after_delete} SyncJobs left after delete")
        if any(r.remaining_remote_after_delete.get(k, -1) != 0 for k in ("truto", "twinmaker")):
            problems.append(f"remote jobs left after delete: {r.remaining_remote_after_delete}")
        return problems

    def _update_verdict(self) -> list[str]:
        u, r, p = self.report.update, self.report, self.params
        if r.error:
            return []  # the run stopped early: said once above
        problems: list[str] = []
        if u.kills < p.kills_update:
            problems.append(f"kills done during update {u.kills} of {p.kills_update}")
        if u.updated != r.applied:
            problems.append(f"{u.updated} of {r.applied} SyncJobs Ready at their new spec")
        if u.distinct_remote_ids != r.applied:
            problems.append(f"after update: {u.distinct_remote_ids} distinct remote ids")
        if u.truto_remote_per_integration != r.expected_truto_per_integration:
            problems.append(f"after update: Truto jobs {u.truto_remote_per_integration}")
        if u.twinmaker_remote_jobs != r.applied_twinmaker:
            problems.append(f"after update: {u.twinmaker_remote_jobs} TwinMaker remote jobs")
        if u.status_ids_missing_remotely or u.remote_ids_unreferenced:
            problems.append(
                f"after update: status ids with no remote job {u.status_ids_missing_remotely},"
                f" remote jobs no SyncJob refers to {u.remote_ids_unreferenced}"
            )
        if u.remote_with_old_content:
            problems.append(f"remote jobs still at the old spec: {u.remote_with_old_content}")
        return problems


class _ChaosOperator(OperatorProcess):
    """OperatorProcess that can tell whether it still runs (it may die by itself)."""

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None


# -- remote listing, retried through the injected faults ---------------------------------------


def _retrying(call: Callable[[], T], what: str, attempts: int = 20) -> T:
    """The faults hit this harness's own reads too: retry 5xx/throttling, fail on the rest."""
    for attempt in range(attempts):
        try:
            return call()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code < 500 and exc.response.status_code != 429:
                raise
            last: Exception = exc
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status < 500 and status != 429:
                raise
            last = exc
        except httpx.TransportError as exc:
            last = exc
        time.sleep(min(0.1 * 2**attempt, 1.0))
    raise RuntimeError(f"{what}: still failing after {attempts} attempts: {last}")


def _twinmaker_tags(twinmaker: IoTTwinMakerClient, arn: str) -> dict[str, str]:
    def page() -> dict[str, str]:
        return dict(twinmaker.list_tags_for_resource(resourceARN=arn)["tags"])

    return _retrying(page, f"list tags of {arn}")


def _truto_jobs(
    truto: httpx.Client, integration: str, page_size: int = 100
) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"integration_name": integration, "limit": str(page_size)}
        if cursor:
            params["next_cursor"] = cursor

        def page(params: dict[str, str] = params) -> dict[str, Any]:
            response = truto.get("/sync-job", params=params)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        body = _retrying(page, f"list Truto jobs of {integration}")
        jobs.extend(body["result"])
        cursor = body.get("next_cursor")
        if not cursor:
            return jobs


def _twinmaker_jobs(twinmaker: IoTTwinMakerClient, workspace: str) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = []
    token: str | None = None
    while True:

        def page(token: str | None = token) -> dict[str, Any]:
            if token:
                return dict(twinmaker.list_sync_jobs(workspaceId=workspace, nextToken=token))
            return dict(twinmaker.list_sync_jobs(workspaceId=workspace))

        body = _retrying(page, f"list TwinMaker jobs of {workspace}")
        summaries.extend(dict(s) for s in body.get("syncJobSummaries", []))
        token = body.get("nextToken")
        if not token:
            return summaries


# -- SyncJob objects ---------------------------------------------------------------------------


def _syncjob(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "syncjob.dev/v1alpha1",
        "kind": "SyncJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def _name(item: Mapping[str, Any]) -> str:
    return str(item["metadata"]["name"])


def _conditions(item: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from (item.get("status") or {}).get("conditions") or []


def _condition_status(item: Mapping[str, Any], kind: str) -> str | None:
    return next((str(c.get("status")) for c in _conditions(item) if c.get("type") == kind), None)


def _summary(item: Mapping[str, Any]) -> str:
    """Every condition in one line: what a SyncJob that did not get there was doing."""
    texts = [
        f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"
        for c in _conditions(item)
    ]
    return "; ".join(texts) or "no conditions"


def _condition_message(item: Mapping[str, Any], kind: str) -> str:
    return next((str(c.get("message", "")) for c in _conditions(item) if c.get("type") == kind), "")


def _is_ready(item: Mapping[str, Any]) -> bool:
    return _condition_status(item, "Ready") == "True"


def _is_ready_at_generation(item: Mapping[str, Any]) -> bool:
    """Ready, and for the spec as it is now."""
    observed = (item.get("status") or {}).get("observedGeneration")
    return _is_ready(item) and observed == item["metadata"].get("generation")


def _status_id(item: Mapping[str, Any]) -> str | None:
    remote_id = ((item.get("status") or {}).get("remote") or {}).get("id")
    return str(remote_id) if remote_id else None


def _status_ids(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Remote id in status: the SyncJobs that name it."""
    ids: dict[str, list[str]] = {}
    for item in items:
        if remote_id := _status_id(item):
            ids.setdefault(remote_id, []).append(_name(item))
    return ids


def _unmatched(ids: Mapping[str, list[str]], remote: RemoteCounts) -> tuple[list[str], list[str]]:
    """Status ids with no remote job, and remote jobs no status names (the first few each)."""
    remote_ids = set(remote.ids)
    return (
        sorted(set(ids) - remote_ids)[:LISTED_NAMES],
        sorted(remote_ids - set(ids))[:LISTED_NAMES],
    )


def _first(mapping: Mapping[str, T], limit: int = LISTED_NAMES) -> dict[str, T]:
    return dict(sorted(mapping.items())[:limit])
