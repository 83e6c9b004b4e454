"""Prometheus metrics. kopf has none of its own; these cover reconciles, remote calls (throttled
ones apart), retries, terminal errors, the drift pass and the SyncJobs by provider and remote
state."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from syncjob_operator.providers.base import ProviderError

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "syncjob_reconcile_total",
    "Reconciles by provider, kind (change, drift, delete) and outcome.",
    ["provider", "kind", "outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "syncjob_reconcile_duration_seconds",
    "Time spent in one reconcile, remote calls included.",
    ["provider", "kind"],
    registry=REGISTRY,
)
REMOTE_CALLS = Counter(
    "syncjob_remote_calls_total",
    "Remote API calls by provider, operation and result (ok or the classified error code).",
    ["provider", "operation", "result"],
    registry=REGISTRY,
)
THROTTLED_CALLS = Counter(
    "syncjob_throttled_calls_total",
    "Remote API calls the provider refused for their request rate (HTTP 429, AWS throttling"
    " codes), by provider and operation.",
    ["provider", "operation"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "syncjob_retries_total",
    "Retryable errors that scheduled a retry.",
    ["provider", "code"],
    registry=REGISTRY,
)
SUPERSEDED_EVENTS = Counter(
    "syncjob_watch_events_superseded_total",
    "Watch events not processed because a newer event of the same object was already queued.",
    registry=REGISTRY,
)
DRIFT_PASS_SECONDS = Histogram(
    "syncjob_drift_pass_duration_seconds",
    "Time one drift pass over every scope took.",
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
DRIFT_PASS_SCOPES = Gauge(
    "syncjob_drift_pass_scopes",
    "Scopes (one provider list each) the latest drift pass walked.",
    registry=REGISTRY,
)
TERMINAL_ERRORS = Counter(
    "syncjob_terminal_errors_total",
    "Errors retrying cannot fix.",
    ["provider", "code"],
    registry=REGISTRY,
)


def count_failed_call(provider: str, error: ProviderError) -> None:
    """A remote call that failed with ``error``: by its code, and as throttled if it was.
    Labels stay bounded: operations are the providers' own constants."""
    REMOTE_CALLS.labels(provider, error.operation, error.code).inc()
    if error.throttled:
        THROTTLED_CALLS.labels(provider, error.operation).inc()


class _ObjectStates(Collector):
    """SyncJobs by provider and remote state, from the latest status each object produced."""

    def __init__(self) -> None:
        self.states: dict[str, tuple[str, str]] = {}
        self._labels: dict[tuple[str, str], tuple[str, str]] = {}  # one tuple per label pair

    def set(self, uid: str, provider: str, state: str) -> None:
        labels = (provider, state)
        self.states[uid] = self._labels.setdefault(labels, labels)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "syncjob_objects",
            "SyncJobs by provider and remote state.",
            labels=["provider", "state"],
        )
        for (provider, state), count in sorted(Tally(self.states.values()).items()):
            family.add_metric([provider, state], count)
        yield family


OBJECT_STATES = _ObjectStates()
REGISTRY.register(OBJECT_STATES)
