"""What the operator costs the API server and what it has done, counted from metrics: the API
server's own `apiserver_request_total` and the operator's /metrics. For the benchmark
(hack/bench_operator.py) and the tests that guard those counts."""

from __future__ import annotations

import re
import time
from collections import Counter

from syncjob_devtools.localrun import OperatorProcess

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
# What the operator writes; kube-controller-manager's leases and endpoints are left out.
OPERATOR_RESOURCES = ("syncjobs", "events", "secrets")
# The user's own writes when SyncJobs are applied: kubectl creating them and their Secret.
USER_WRITES = ("POST syncjobs", "POST secrets")
_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_writes(apiserver_metrics: str) -> Counter[str]:
    """Writes to SyncJobs, Events and Secrets so far, by verb and resource[/subresource], from
    the text of kube-apiserver's /metrics (read as the admin: `kubectl get --raw /metrics`)."""
    counts: Counter[str] = Counter()
    for line in apiserver_metrics.splitlines():
        found = _REQUESTS.match(line)
        if not found:
            continue
        labels = dict(_LABEL.findall(found["labels"]))
        if labels.get("verb") not in WRITE_VERBS:
            continue
        resource = labels.get("resource", "")
        if resource not in OPERATOR_RESOURCES:
            continue
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[f"{labels['verb']} {resource}"] += int(float(found["value"]))
    return counts


def operator_writes(writes: Counter[str]) -> int:
    """The writes in `writes` (a difference of two `api_writes`) not made by the user. The
    operator deletes no Kubernetes object (only remote jobs): DELETEs are kube-controller-
    manager's, e.g. the garbage collection of a namespace deleted a moment earlier."""
    return sum(
        count
        for kind, count in writes.items()
        if kind not in USER_WRITES and not kind.startswith("DELETE ")
    )


def drift_passes(operator_metrics: str) -> int:
    """Drift passes the operator has completed (syncjob_drift_pass_duration_seconds_count)."""
    found = re.search(r"^syncjob_drift_pass_duration_seconds_count (\S+)$", operator_metrics, re.M)
    return int(float(found[1])) if found else 0


def wait_for_drift_passes(operator: OperatorProcess, more: int, deadline: float) -> bool:
    """Waits until `more` drift passes beyond those done now have completed; False if the
    deadline (time.monotonic()) came first. Two passes: the second one started after this
    call."""
    target = drift_passes(operator.metrics()) + more
    while drift_passes(operator.metrics()) < target:
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True
