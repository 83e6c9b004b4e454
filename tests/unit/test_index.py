"""The SyncJob index: filled before kopf starts, kept current from each watch event."""

from __future__ import annotations

from typing import Any, cast

import kopf

from syncjob_operator.drift import Member
from syncjob_operator.index import ObjectIndex
from syncjob_operator.kopf_edge.run import watched
from syncjob_operator.kube import exact_namespaces
from syncjob_operator.metrics import OBJECT_STATES
from syncjob_operator.reconcile import MEMBER_KEY
from tests.unit.fakes import (
    FakeProvider,
    handlers_for,
)
from tests.unit.jobs import ACTIVE, body


def _names(members: Any) -> list[str]:
    return sorted(cast(Member, member).job.name for member in members)


def test_entries_are_replaced_whole_and_removed_with_their_keys() -> None:
    index = ObjectIndex()
    index.replace("u1", {("claim", "a"): 1, ("all",): "one"})
    index.replace("u2", {("all",): "two"})
    assert sorted(index.get(("all",))) == ["one", "two"]
    index.replace("u1", {("claim", "b"): 1, ("all",): "one'"})
    assert index.get(("claim", "a")) == ()  # the old key went with the old entries
    assert sorted(index.get(("all",))) == ["one'", "two"]
    index.remove("u1")
    index.remove("u1")  # removing twice is harmless
    assert (index.get(("claim", "b")), list(index.get(("all",))), len(index)) == ((), ["two"], 1)


def test_a_key_shared_by_several_objects_keeps_each_value_as_they_come_and_go() -> None:
    index = ObjectIndex()
    key = ("secret", "ns", "creds")
    for uid in ("u1", "u2", "u3"):
        index.replace(uid, {key: (uid, "pair-shaped value")})
    assert sorted(index.get(key)) == [(u, "pair-shaped value") for u in ("u1", "u2", "u3")]
    index.remove("u2")
    index.remove("u3")
    assert list(index.get(key)) == [("u1", "pair-shaped value")]
    index.replace("u4", {key: ("u4", "pair-shaped value")})
    index.remove("u1")
    assert list(index.get(key)) == [("u4", "pair-shaped value")]
    index.remove("u4")
    assert index.get(key) == ()


def test_entries_an_event_repeats_keep_the_values_already_held() -> None:
    index = ObjectIndex()
    held = ["claim", 1]
    index.replace("u1", {("claim", "a"): held, ("member",): "v1"})
    index.replace("u1", {("claim", "a"): ["claim", 1], ("member",): "v2"})
    (claim,) = index.get(("claim", "a"))
    assert claim is held  # equal: the new event's copy was not kept
    assert list(index.get(("member",))) == ["v2"]  # changed: replaced
    index.replace("u1", {("claim", "a"): ["claim", 2]})
    assert list(index.get(("claim", "a"))) == [["claim", 2]]
    assert index.get(("member",)) == ()


def test_namespaces_are_matched_as_kopf_matches_them() -> None:
    assert watched([])("anything")  # no pattern: cluster-wide
    assert watched(["team-a", "team-b"])("team-a")
    assert not watched(["team-a", "team-b"])("team-c")
    assert watched(["myapp-*, !*-pr-*"])("myapp-live")
    assert not watched(["myapp-*, !*-pr-*"])("myapp-pr-1")
    assert exact_namespaces(["team-a", "team-b"])
    assert not exact_namespaces([])
    assert not exact_namespaces(["team-a", "myapp-*"])


def test_events_keep_the_index_current() -> None:
    handlers = handlers_for(FakeProvider([ACTIVE]))
    handlers.prefill([body(name="listed", uid="u0", external_id="id-0")])
    assert _names(handlers.reconciler.index.get(MEMBER_KEY)) == ["listed"]
    assert [
        c.name for c in handlers.reconciler.deps.claims.claimants("AWSIoTTwinMaker", "id-0")
    ] == ["listed"]

    one = kopf.Body(cast(kopf.RawBody, body(name="one", uid="u1", external_id="id-1")))
    handlers.on_watch_event(None, one)  # kopf's listing
    handlers.on_watch_event("MODIFIED", one)
    assert _names(handlers.reconciler.index.get(MEMBER_KEY)) == ["listed", "one"]
    assert [
        c.name for c in handlers.reconciler.deps.claims.claimants("AWSIoTTwinMaker", "id-1")
    ] == ["one"]
    OBJECT_STATES.set("u1", "AWSIoTTwinMaker", "ACTIVE")  # as its reconcile would
    handlers.on_watch_event("DELETED", one)
    assert _names(handlers.reconciler.index.get(MEMBER_KEY)) == ["listed"]
    assert "u1" not in OBJECT_STATES.states  # gone from syncjob_objects, finalizer or not
    assert handlers.reconciler.deps.claims.claimants("AWSIoTTwinMaker", "id-1") == []


def test_one_objects_value_under_a_key_alone_or_shared() -> None:
    index = ObjectIndex()
    index.replace("u1", {"owner": "a", "shared": 1})
    index.replace("u2", {"shared": 2})
    assert (index.value("u1", "owner"), index.value("u2", "owner")) == ("a", None)
    assert (index.value("u1", "shared"), index.value("u2", "shared")) == (1, 2)
    index.remove("u1")
    assert (index.value("u1", "shared"), index.value("u2", "shared")) == (None, 2)
    assert index.value("u3", "shared") is None
