"""The smallest kopf operator that does a SyncJob's visible work, as the benchmark's yardstick
for operator CPU per object: kopf's finalizer, one Ready status write, one Event, no provider
call, kopf's defaults otherwise. Run by hack/bench_operator.py (phase `peer`):

    kopf run hack/bench_peer.py --standalone --namespace peer
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

RESOURCE = ("syncjob.dev", "v1alpha1", "syncjobs")


@kopf.on.create(*RESOURCE)
def create(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    generation = body.metadata.get("generation", 1)
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Available",
            "message": "ready",
            "lastTransitionTime": now,
            "observedGeneration": generation,
        }
    ]
    kopf.event(body, type="Normal", reason="Created", message="ready")


@kopf.on.delete(*RESOURCE)
def delete(**_: Any) -> None:
    """Only for kopf's finalizer: deletion waits for the operator, as a real one's does."""
