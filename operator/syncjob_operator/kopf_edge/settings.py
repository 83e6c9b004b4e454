"""kopf's settings, and what the operator reads of kopf's own annotations."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping

import kopf

from syncjob_operator.kube import GROUP, LIST_PAGE_SIZE, PLURAL, SECRET_HOLD
from syncjob_operator.model import FINALIZER, parse_time

ANNOTATION_PREFIX = "syncjob.dev"
# kopf keeps a handler's progress in this annotation while it retries or polls, and removes it
# once the handler is done: its presence means the change handler owns the object.
APPLY_PROGRESS = f"{ANNOTATION_PREFIX}/apply"
# kopf's diff-base, written once a change is handled: without it, kopf has a change (the
# creation) still to handle, and the change handler owns the object.
LAST_HANDLED = f"{ANNOTATION_PREFIX}/last-handled-configuration"
# How long kopf waits for the watch to echo its own patch before handling the object again
# from older events (settings.persistence.consistency_timeout, default 5 s). In a burst of
# thousands of objects the watch lags by more than that, and kopf then handled an already
# created SyncJob's creation again from a stale event: extra writes and reads (a third of
# 1,000 objects at 5 s, about one in three at 10,000 with 30 s). A lost echo (a re-list) only
# delays that object's next handling by this much.
CONSISTENCY_TIMEOUT_SECONDS = 120.0
# A retry kopf has not run this long after its due time never will: kopf re-ran a handled
# change from a stale event, the re-run failed, and the newer event shows the change handled,
# so kopf sees nothing to do. The drift pass then owns the object and clears kopf's retry.
OVERDUE_RETRY_SECONDS = 2 * CONSISTENCY_TIMEOUT_SECONDS
# kopf's final patch is two requests, the metadata (its diff-base) and then the status: the
# first one's echo shows a handled object without status. The drift pass leaves such an
# object alone this long, or it writes the status a second time (7 of 100 objects did).
STATUS_IN_FLIGHT_SECONDS = 10.0


def handler_until(annotations: Mapping[str, str], *, has_status: bool) -> float:
    """Until when (epoch seconds) kopf's change handler owns the object (Member.handler_until)."""
    if LAST_HANDLED not in annotations:
        return math.inf  # kopf handles a creation on every event until it is handled
    progress = annotations.get(APPLY_PROGRESS)
    if progress is None:
        # Handled, no status: kopf's status write follows its metadata write, or the status
        # was lost (then the drift pass rebuilds it once this has passed).
        return 0.0 if has_status else time.time() + STATUS_IN_FLIGHT_SECONDS
    try:
        state = json.loads(progress)
        due = parse_time(state.get("delayed") or state["started"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return math.inf  # not kopf's format: leave it to kopf
    return due.timestamp() + OVERDUE_RETRY_SECONDS


def configure_settings(
    settings: kopf.OperatorSettings,
    *,
    exact_namespaces: bool = False,
    peering_lifetime: int = 60,
    shard: Mapping[str, str] | None = None,
    secret_hold: str = SECRET_HOLD,
) -> None:
    """All kopf settings in one place; each non-default says why."""
    # The user's trade-off between failover time and keep-alive writes (--peering-lifetime).
    settings.peering.lifetime = peering_lifetime
    if shard:
        # A shard watches only its own SyncJobs, server-side. Handler label filters alone are
        # not enough: kopf releases its finalizer from an object no deletion handler of its
        # own matches, so a shard would strip the others' finalizers, and their deletions
        # would then skip the remote job and the Secret release.
        selector = ",".join(f"{key}={value}" for key, value in sorted(shard.items()))
        settings.watching.label_selectors[GROUP, PLURAL] = selector
    # Only the Secrets this operator holds (the Secret handler's label, server-side).
    settings.watching.label_selectors["secrets"] = f"{secret_hold}=true"
    # No worker limit (settings.queueing.worker_limit). A worker keeps its slot while its
    # object waits out a kopf retry or settles, so in a provider outage retrying objects would
    # hold every slot and starve the rest; and 1,000 did not lower a 10,000-object burst's peak
    # memory (docs/benchmarks.md).
    if exact_namespaces:
        # Named namespaces need no discovery of namespaces or CRDs, which per-namespace Roles
        # forbid: kopf would retry those lists for about a minute before watching anything.
        settings.scanning.disabled = True
    settings.persistence.finalizer = FINALIZER
    # The status schema is strict (no x-kubernetes-preserve-unknown-fields): the API server
    # would prune kopf's status-based progress, so keep progress and diff-base in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key=LAST_HANDLED.removeprefix(f"{ANNOTATION_PREFIX}/")
    )
    settings.persistence.consistency_timeout = CONSISTENCY_TIMEOUT_SECONDS
    # kopf turns every INFO log of a handler into an Event (one API write each); we post our
    # own Events with reasons, so only warnings and errors go through the log bridge.
    settings.posting.level = logging.WARNING
    # A watch that silently dies would stop all reconciles: have the server end each watch
    # and reconnect, and bound every API request.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # kopf's own LIST in pages, as the index's (kube.LIST_PAGE_SIZE says why).
    settings.watching.chunk_size = LIST_PAGE_SIZE
