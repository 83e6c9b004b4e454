"""The managedFields transform and the skipping of superseded events, driven through kopf's own
watch loop and workers (its private API, pinned)."""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import fetching, watching
from kopf._core.reactor import processing, queueing

from syncjob_operator.kopf_edge import slimwatch
from syncjob_operator.metrics import REGISTRY

MANAGED = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {".": {}}}}]


def body(name: str, resource_version: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "resourceVersion": resource_version,
            "managedFields": copy.deepcopy(MANAGED),
        },
        "spec": {"truto": {"integrationName": "crm"}},
    }


@pytest.fixture
def kopf_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing with one object and a watch with one event, then 410 Gone to end the stream;
    what `install` wraps is restored after the test."""
    monkeypatch.setattr(watching, "continuous_watch", watching.continuous_watch)
    monkeypatch.setattr(processing, "process_resource_event", processing.process_resource_event)

    async def fetch_objs(**_: Any) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        yield [body("listed", "1")], "1"

    async def watch_objs(**_: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"type": "MODIFIED", "object": body("watched", "2")}
        yield {"type": "ERROR", "object": {"code": 410}}

    monkeypatch.setattr(fetching, "fetch_objs", fetch_objs)
    monkeypatch.setattr(watching, "watch_objs", watch_objs)


async def kopf_events() -> list[Any]:
    stream = watching.infinite_watch(
        settings=kopf.OperatorSettings(),
        resource=kopf.Resource("syncjob.dev", "v1alpha1", "syncjobs"),
        namespace=None,
        _iterations=1,
    )
    return [event async for event in stream]


@pytest.mark.usefixtures("kopf_api")
async def test_kopf_lists_and_watches_without_managed_fields_once_installed() -> None:
    before = [e for e in await kopf_events() if isinstance(e, dict)]
    assert [e["object"]["metadata"]["managedFields"] for e in before] == [MANAGED, MANAGED]

    slimwatch.install()
    slimwatch.install()  # a second install must not wrap twice
    assert not hasattr(watching.continuous_watch.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
    after = [e for e in await kopf_events() if isinstance(e, dict)]

    assert [(e["type"], e["object"]["metadata"]) for e in after] == [
        (None, {"name": "listed", "resourceVersion": "1"}),
        ("MODIFIED", {"name": "watched", "resourceVersion": "2"}),
    ]
    assert all(e["object"]["spec"] == {"truto": {"integrationName": "crm"}} for e in after)


@pytest.mark.parametrize(
    "event",
    [
        watching.Bookmark.LISTED,
        {"type": "DELETED", "object": {"kind": "Status"}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
    ],
)
def test_events_without_managed_fields_pass_unchanged(event: Any) -> None:
    expected = copy.deepcopy(event)
    assert slimwatch.strip_managed_fields(event) == expected


def event(kind: str | None, name: str, resource_version: str, **metadata: str) -> dict[str, Any]:
    metadata.update(name=name, uid=name, resourceVersion=resource_version)
    return {"type": kind, "object": {"metadata": metadata}}


async def processed_by_kopf(
    monkeypatch: pytest.MonkeyPatch,
    *,
    installed: bool,
    expected: int,
    observed: list[Any] | None = None,
    first_processed: list[int] | None = None,
) -> list[Any]:
    """Runs kopf's own watcher and per-object workers over eight events of two objects and says
    which reached kopf's event processing (replaced by a recorder). The first event's processing
    waits until the watcher has queued every event, as a busy worker does in a burst; the stream
    ends (the operator stopping) once `expected` events were processed."""
    events = [
        event(None, "a", "1"),  # kopf's listing
        event("MODIFIED", "a", "2"),
        event("MODIFIED", "a", "3"),
        event("ADDED", "b", "4"),  # another object: a queue of its own
        event("MODIFIED", "a", "5"),
        event("MODIFIED", "a", "6", deletionTimestamp="2026-12-02T08:00:00Z"),
        event("MODIFIED", "a", "7", deletionTimestamp="2026-12-02T08:00:00Z"),
        event("DELETED", "a", "8"),
    ]
    all_queued, all_processed = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []
    observed = [] if observed is None else observed
    first_processed = [] if first_processed is None else first_processed

    def observe(event_type: str | None, raw: Mapping[str, Any]) -> None:
        # Before kopf's processing of the same event: nothing of it seen yet.
        assert (event_type, raw["metadata"]["resourceVersion"]) not in seen
        observed.append((event_type, raw["metadata"]["resourceVersion"]))

    async def infinite_watch(**_: Any) -> AsyncIterator[dict[str, Any]]:
        for each in events:
            yield each
        all_queued.set()
        await all_processed.wait()

    async def process_resource_event(*, raw_event: dict[str, Any], **_: Any) -> None:
        if not seen:
            await all_queued.wait()
        seen.append((raw_event["type"], raw_event["object"]["metadata"]["resourceVersion"]))
        if len(seen) == expected:
            all_processed.set()

    monkeypatch.setattr(watching, "infinite_watch", infinite_watch)
    monkeypatch.setattr(processing, "process_resource_event", process_resource_event)
    if installed:
        slimwatch.install()
        slimwatch.install(  # a second install must not wrap twice
            events={("syncjob.dev", "syncjobs"): observe},
            first_processed=lambda: first_processed.append(len(seen)),
        )
        assert processing.process_resource_event.__wrapped__ is process_resource_event  # type: ignore[attr-defined]
    settings = kopf.OperatorSettings()
    resource = kopf.Resource("syncjob.dev", "v1alpha1", "syncjobs")
    await queueing.watcher(
        namespace=None,
        settings=settings,
        resource=resource,
        # Looked up and bound as kopf's running.py and orchestration.py do.
        processor=functools.partial(processing.process_resource_event, resource=resource),
    )
    return seen


async def test_kopf_skips_events_a_newer_event_of_the_same_object_supersedes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await processed_by_kopf(monkeypatch, installed=False, expected=8) == [
        (None, "1"),
        ("ADDED", "4"),
        ("MODIFIED", "2"),
        ("MODIFIED", "3"),
        ("MODIFIED", "5"),
        ("MODIFIED", "6"),
        ("MODIFIED", "7"),
        ("DELETED", "8"),
    ]
    before = REGISTRY.get_sample_value("syncjob_watch_events_superseded_total") or 0.0
    observed: list[Any] = []
    first_processed: list[int] = []
    processed = await processed_by_kopf(
        monkeypatch,
        installed=True,
        expected=5,
        observed=observed,
        first_processed=first_processed,
    )
    # The listing event and the deletion's events always go through; "b" has nothing newer.
    assert processed == [
        (None, "1"),
        ("ADDED", "4"),
        ("MODIFIED", "6"),
        ("MODIFIED", "7"),
        ("DELETED", "8"),
    ]
    assert REGISTRY.get_sample_value("syncjob_watch_events_superseded_total") == before + 3
    # Each processed event reached the `events` callback first, superseded ones did not; the
    # `first_processed` callback ran once, after the first event was processed.
    assert observed == processed
    assert first_processed == [1]


@pytest.mark.usefixtures("kopf_api")
async def test_each_complete_listing_of_a_resource_is_reported_with_its_uids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fetch_objs(**_: Any) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        yield [event(None, "a", "1")["object"], event(None, "b", "1")["object"]], "1"
        yield [event(None, "c", "2")["object"]], "2"  # a second page of the same listing

    monkeypatch.setattr(fetching, "fetch_objs", fetch_objs)
    listings: list[tuple[str | None, frozenset[str]]] = []
    slimwatch.install({("syncjob.dev", "syncjobs"): lambda *listing: listings.append(listing)})
    await kopf_events()
    await kopf_events()  # the stream ended (410 Gone): kopf lists again
    assert listings == [(None, frozenset({"a", "b", "c"}))] * 2

    slimwatch.install({("syncjob.dev", "other"): lambda *listing: listings.append(listing)})
    await kopf_events()
    assert len(listings) == 2  # another resource's callback is not called
