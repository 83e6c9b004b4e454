"""Memory per SyncJob held by kopf against the memory the operator holds itself, measured with
tracemalloc over N Ready SyncJobs (half Truto, half TwinMaker, as `hack/bench_operator.py`
applies them) at their last watch event.

kopf's part is what it keeps per object between events (`ResourceMemories`: one
`ResourceMemory` each). The operator's part is its index entry (claims, owner name, Secrets,
the drift pass's Member) and the `syncjob_objects` sample. Both sides are fed the same bodies:
what the API server sends once a SyncJob is Ready (kubectl's last-applied annotation, kopf's
diff base, the identity, the finalizer, the status the operator computes); managedFields are
stripped, as slimwatch strips them. Transient state (a busy object's event queue and worker,
the bodies a handler holds) is not counted.

    python hack/bench_memory.py --jobs 5000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import kopf
from bench_operator import manifests_of
from kopf._core.reactor.inventory import ResourceMemories

from syncjob_operator.converge import Outcome
from syncjob_operator.kopf_edge.handlers import KopfHandlers
from syncjob_operator.kopf_edge.settings import LAST_HANDLED
from syncjob_operator.metrics import OBJECT_STATES
from syncjob_operator.model import EXTERNAL_ID_ANNOTATION, FINALIZER, SyncJob
from syncjob_operator.providers.base import Observation
from syncjob_operator.reconcile import Deps, Reconciler
from syncjob_operator.status import compute_status

NAMESPACE = "bench"


def ready_bodies(jobs: int) -> list[dict[str, Any]]:
    """The bodies of `jobs` SyncJobs per provider as the watch sends them once each is Ready."""
    now = datetime.datetime.now(datetime.UTC)
    bodies = []
    for i, manifest in enumerate(manifests_of(jobs)):
        applied = json.dumps(manifest, separators=(",", ":"))
        remote_id = f"arn:aws:iottwinmaker:us-east-1:123456789012:sync-job/{i:032x}"
        manifest["metadata"].update(
            namespace=NAMESPACE,
            uid=f"{i:08x}-0000-4000-8000-{i:012x}",
            resourceVersion=str(100_000 + i),
            generation=1,
            creationTimestamp=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            finalizers=[FINALIZER],
            annotations={
                "kubectl.kubernetes.io/last-applied-configuration": applied + "\n",
                LAST_HANDLED: json.dumps({"spec": manifest["spec"]}),
                EXTERNAL_ID_ANNOTATION: remote_id,
            },
        )
        manifest["status"] = {}
        job = SyncJob.from_body(manifest)
        observed = Observation(exists=True, remote_id=remote_id, state="ACTIVE", ready=True)
        manifest["status"] = compute_status(job, Outcome(observed, "created"), {}, now)
        bodies.append(manifest)
    return bodies


def held(fill: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes still allocated once `fill()` returned (its result kept alive), and the result."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    kept = fill()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before, kept


def kopf_memories(bodies: list[dict[str, Any]]) -> ResourceMemories:
    memories = ResourceMemories()

    async def recall_all() -> None:
        for body in bodies:
            await memories.recall(body, noticed_by_listing=True, memobase=kopf.Memo())

    asyncio.run(recall_all())
    return memories


def operator_index(bodies: list[dict[str, Any]]) -> KopfHandlers:
    # Only the index is used: nothing here reconciles, so no provider, guard or Secrets.
    deps = Deps(providers={}, guard=None, secrets=None)  # type: ignore[arg-type]
    handlers = KopfHandlers(Reconciler(deps), writer=None)  # type: ignore[arg-type]
    for body in bodies:
        handlers.on_watch_event("MODIFIED", body)
        provider = "Truto" if "truto" in body["spec"] else "AWSIoTTwinMaker"
        OBJECT_STATES.set(body["metadata"]["uid"], provider, "ACTIVE")
    return handlers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="SyncJobs per provider")
    args = parser.parse_args()
    bodies = ready_bodies(args.jobs)
    total = len(bodies)
    body_bytes = sum(len(json.dumps(b, separators=(",", ":"))) for b in bodies) / total
    tracemalloc.start()
    kopf_bytes, _memories = held(lambda: kopf_memories(bodies))
    ours_bytes, _handlers = held(lambda: operator_index(bodies))
    print(
        json.dumps(
            {
                "syncjobs": total,
                "body_json_bytes_per_syncjob": round(body_bytes),
                "kopf_bytes_per_syncjob": round(kopf_bytes / total),
                "operator_bytes_per_syncjob": round(ours_bytes / total),
                "kopf_mib": round(kopf_bytes / 2**20, 1),
                "operator_mib": round(ours_bytes / 2**20, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
