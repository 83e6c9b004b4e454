"""Economies on kopf's watch streams, as Go controllers' informers and work queues make them.

**Smaller events.** Drop `metadata.managedFields` from every object kopf lists or watches, as
client-go's informer transform `cache.TransformStripManagedFields` does for Go controllers.

managedFields are server-side-apply bookkeeping: nearly half of a SyncJob's JSON (four field
managers: kubectl, the finalizer's apply, kopf's metadata and status patches). Neither kopf nor
the operator reads them, yet kopf queues every event's whole body until the object's worker
takes it. When the API server drops a watcher that fell behind and replays thousands of events
on the reconnect, those queued bodies are the peak of a large burst's memory (docs/benchmarks.md).

kopf has no transform hook, so this wraps the one generator every listed and watched object
passes through: `kopf._cogs.clients.watching.continuous_watch`, which kopf's `infinite_watch`
looks up as a module global on each (re)connect. That is kopf's private API: pyproject.toml
pins kopf to the verified range, and tests/unit/test_kopf_slimwatch.py drives kopf's own
`infinite_watch` to fail if a kopf upgrade stops routing events through here.

**Superseded events skipped.** kopf hands an object's worker every watch event in order; a Go
controller's work queue holds the object's key once, however many events came, and reads the
latest state. Here an added or modified event is skipped when a newer event of the same object
is already queued behind it: kopf's own `stream_pressure` (set when an event is queued, cleared
when the worker takes the last one) says so. The newer event carries the whole object, so the
handlers, which compare the object with what was last handled, lose nothing. Each SyncJob's own
writes (crash guard, kopf's metadata and status patches) come back as echoes that arrive
together; the stale ones are no longer processed one by one. Listing events (they tell kopf
what it found at start-up), deletions and every event of an object being deleted always go
through, so deleting keeps kopf's exact sequence. When the operator stops, the last event
queued before the end of the stream counts as superseded too: the next start lists the object
again. This wraps kopf's private `kopf._core.reactor.processing.process_resource_event`, which
kopf looks up when the operator starts; tests/unit/test_kopf_slimwatch.py drives kopf's own watcher
and workers to fail if that changes.

**Events observed without a handler.** `install(events=...)` hands each event kopf is about to
process (superseded ones are not) to a plain callback per resource, before kopf's handlers see
it, as a Go informer's event handler sees each delta. Registered as a `kopf.on.event` handler,
the same callback cost kopf's whole handler machinery (a cause, a handler context, a logged
success) on every event of every object. `install(first_processed=...)` is called once, right
after kopf first processed an event, in that worker's context (where kopf's Event posting is
set up).

**Listings reported.** kopf sends no DELETED event for an object deleted while its watch was
away (a 410 Gone, an API-server restart): it lists again, and the object is simply not in the
listing. Each `continuous_watch` call lists first (events of type None), then yields kopf's
private `Bookmark.LISTED` before it streams; `install(listings=...)` hands the uids of each
complete listing to a callback per resource, so the caller can drop what it still holds of
objects that are gone. Verified with kopf 1.45.2 (the range pyproject.toml pins).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from kopf._cogs.clients import watching
from kopf._core.reactor import processing

from syncjob_operator.metrics import SUPERSEDED_EVENTS

_Watch = Callable[..., AsyncIterator[Any]]
_Process = Callable[..., Coroutine[Any, Any, Any]]
_SUPERSEDABLE = frozenset({"ADDED", "MODIFIED"})  # not listings (type None) nor deletions
# Called with the namespace a listing covered (None: all) and the uids it returned.
OnListed = Callable[[str | None, frozenset[str]], None]
# Called with an event's type (None: a listing) and its object, as the API server sent it.
OnEvent = Callable[[str | None, Mapping[str, Any]], None]
_on_listed: dict[tuple[str, str], OnListed] = {}  # by (group, plural)
_on_event: dict[tuple[str, str], OnEvent] = {}
_first_processed: list[Callable[[], None]] = []  # emptied when called


def strip_managed_fields(event: Any) -> Any:
    """Remove managedFields from a raw watch or list event in place; other values pass as is."""
    obj = event.get("object") if isinstance(event, dict) else None
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return event


def _slimmed(watch: _Watch) -> _Watch:
    async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
        resource = kwargs["resource"]
        on_listed = _on_listed.get((resource.group, resource.plural))
        listed: set[str] = set()
        async for event in watch(**kwargs):
            if event is watching.Bookmark.LISTED:
                if on_listed is not None:
                    on_listed(kwargs["namespace"], frozenset(listed))
                listed.clear()
            elif on_listed is not None and event.get("type") is None:
                listed.add(event["object"]["metadata"]["uid"])
            yield strip_managed_fields(event)

    continuous_watch.__wrapped__ = watch  # type: ignore[attr-defined]
    return continuous_watch


def _skipping_superseded(process: _Process) -> _Process:
    async def process_resource_event(
        *, raw_event: Any, stream_pressure: asyncio.Event | None = None, **kwargs: Any
    ) -> Any:
        if (
            stream_pressure is not None
            and stream_pressure.is_set()
            and raw_event.get("type") in _SUPERSEDABLE
            and not raw_event["object"]["metadata"].get("deletionTimestamp")
        ):
            SUPERSEDED_EVENTS.inc()
            return None  # no patch made: kopf expects no new resource version
        resource = kwargs["resource"]
        on_event = _on_event.get((resource.group, resource.plural))
        if on_event is not None:
            on_event(raw_event["type"], raw_event["object"])
        version = await process(raw_event=raw_event, stream_pressure=stream_pressure, **kwargs)
        while _first_processed:
            _first_processed.pop()()
        return version

    process_resource_event.__wrapped__ = process  # type: ignore[attr-defined]
    return process_resource_event


def install(
    listings: Mapping[tuple[str, str], OnListed] | None = None,
    events: Mapping[tuple[str, str], OnEvent] | None = None,
    first_processed: Callable[[], None] | None = None,
) -> None:
    """Route kopf's watch streams through `strip_managed_fields` and its event processing past
    superseded events; report each complete listing of a (group, plural) in `listings`, and each
    event kopf processes of one in `events`, to its callback; call `first_processed` once, after
    the first event kopf processed. Call it before `kopf.operator`; calling it again replaces
    the callbacks only."""
    _on_listed.clear()
    _on_listed.update(listings or {})
    _on_event.clear()
    _on_event.update(events or {})
    _first_processed.clear()
    if first_processed is not None:
        _first_processed.append(first_processed)
    if not hasattr(watching.continuous_watch, "__wrapped__"):
        watching.continuous_watch = _slimmed(watching.continuous_watch)
    if not hasattr(processing.process_resource_event, "__wrapped__"):
        processing.process_resource_event = _skipping_superseded(processing.process_resource_event)
