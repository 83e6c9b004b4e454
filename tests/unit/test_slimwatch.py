"""The managedFields transform, driven through kopf's own watch loop (its private API, pinned)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kopf._cogs.clients import fetching, watching

from syncjob_operator import slimwatch

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
    kopf's continuous_watch is restored after the test."""
    monkeypatch.setattr(watching, "continuous_watch", watching.continuous_watch)

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
