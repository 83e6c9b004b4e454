"""Drop `metadata.managedFields` from every object kopf lists or watches, as client-go's informer
transform `cache.TransformStripManagedFields` does for Go controllers.

managedFields are server-side-apply bookkeeping: nearly half of a SyncJob's JSON (four field
managers: kubectl, the finalizer's apply, kopf's metadata and status patches). Neither kopf nor
the operator reads them, yet kopf queues every event's whole body until the object's worker
takes it. When the API server drops a watcher that fell behind and replays thousands of events
on the reconnect, those queued bodies are the peak of a large burst's memory (docs/benchmarks.md,
sixth session).

kopf has no transform hook, so this wraps the one generator every listed and watched object
passes through: `kopf._cogs.clients.watching.continuous_watch`, which kopf's `infinite_watch`
looks up as a module global on each (re)connect. That is kopf's private API: kopf is pinned in
requirements/*.lock, and tests/unit/test_slimwatch.py drives kopf's own `infinite_watch` to fail
if a kopf upgrade stops routing events through here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import watching

_Watch = Callable[..., AsyncIterator[Any]]


def strip_managed_fields(event: Any) -> Any:
    """Remove managedFields from a raw watch or list event in place; other values pass as is."""
    obj = event.get("object") if isinstance(event, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return event


def _slimmed(watch: _Watch) -> _Watch:
    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        async for event in watch(**kwargs):
            yield strip_managed_fields(event)

    continuous_watch.__wrapped__ = watch  # type: ignore[attr-defined]
    return continuous_watch


def install() -> None:
    """Route kopf's watch streams through `strip_managed_fields`; calling it again is a no-op."""
    if not hasattr(watching.continuous_watch, "__wrapped__"):
        watching.continuous_watch = _slimmed(watching.continuous_watch)
