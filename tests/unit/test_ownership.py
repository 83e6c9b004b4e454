"""ownership: what each SyncJob contributes to the index, and who wins a contested claim."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from syncjob_operator.model import SyncJob
from syncjob_operator.ownership import (
    ADOPTION_CONFLICT,
    NOT_OWNED,
    OWNED_BY_ANOTHER,
    Claimant,
    Claims,
    job_entries,
    verdict,
)
from syncjob_operator.providers.base import Observation, ProviderError
from tests.unit.fakes import claims_of, entries_of, indexed
from tests.unit.jobs import TRUTO_SPEC, TWINMAKER_JOB, body

JOB = TWINMAKER_JOB
ACTIVE = Observation(exists=True, remote_id="id-1", state="ACTIVE", ready=True)


def _claimant(**overrides: Any) -> Claimant:
    fields: dict[str, Any] = {
        "namespace": "ns",
        "name": "job",
        "uid": "u1",
        "created_at": "2026-01-01T00:00:00Z",
        "recorded": True,
    }
    return Claimant(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("one", "expected"),
    [
        pytest.param(
            body(),
            {("owner", "ns/job"): "u1"},
            id="no-identity-only-the-owner-name",
        ),
        pytest.param(
            body(external_id="id-1", status_id="id-1"),
            {("owner", "ns/job"): "u1", ("claim", "AWSIoTTwinMaker", "id-1"): _claimant()},
            id="status-agrees-with-annotation-is-a-recorded-claim",
        ),
        pytest.param(
            body(external_id="id-1"),
            {
                ("owner", "ns/job"): "u1",
                ("claim", "AWSIoTTwinMaker", "id-1"): _claimant(recorded=False),
            },
            id="annotation-alone-is-an-unrecorded-claim-a-copied-manifest",
        ),
        pytest.param(
            body(external_id="id-1", status_id="id-0"),
            {
                ("owner", "ns/job"): "u1",
                ("claim", "AWSIoTTwinMaker", "id-1"): _claimant(recorded=False),
            },
            id="annotation-wins-over-a-disagreeing-status-but-is-unrecorded",
        ),
        pytest.param(
            body(status_id="id-1"),
            {("owner", "ns/job"): "u1", ("claim", "AWSIoTTwinMaker", "id-1"): _claimant()},
            id="status-alone-after-kubectl-replace-is-still-recorded",
        ),
        pytest.param(
            body(spec=TRUTO_SPEC, external_id="t-1", status_id="t-1"),
            {
                ("owner", "ns/job"): "u1",
                ("claim", "Truto", "t-1"): _claimant(),
                ("secret", "ns", "truto-token"): "u1",
            },
            id="truto-claim-and-the-token-secret",
        ),
    ],
)
def test_job_entries(one: dict[str, Any], expected: dict[tuple[str, ...], Any]) -> None:
    assert job_entries(SyncJob.from_body(one)) == expected


def test_a_syncjob_whose_spec_does_not_parse_is_not_indexed() -> None:
    assert entries_of(body(spec={"awsIoTTwinMaker": {"region": "x"}})) == {}


def test_job_entries_name_the_twinmaker_credentials_secret() -> None:
    spec = {
        "awsIoTTwinMaker": {
            "region": "us-east-1",
            "workspaceId": "ws",
            "syncSource": "SITEWISE",
            "syncRole": "arn:aws:iam::123456789012:role/r",
            "credentialsSecretRef": {"name": "aws"},
        }
    }
    assert job_entries(SyncJob.from_body(body(spec=spec)))[("secret", "ns", "aws")] == "u1"


@pytest.mark.parametrize(
    ("bodies", "winner"),
    [
        pytest.param(
            [
                body(name="old", uid="old", external_id="x", created="2020-01-01T00:00:00Z"),
                body(name="new", uid="new", external_id="x", status_id="x"),
            ],
            "new",
            id="recorded-beats-unrecorded-even-when-younger",
        ),
        pytest.param(
            [
                body(name="new", uid="new", external_id="x", created="2026-02-01T00:00:00Z"),
                body(name="old", uid="old", external_id="x", created="2026-01-01T00:00:00Z"),
            ],
            "old",
            id="then-the-older-object-a-restored-backup-beside-the-original",
        ),
        pytest.param(
            [
                body(namespace="b", uid="b", external_id="x", status_id="x"),
                body(namespace="a", uid="a", external_id="x", status_id="x"),
            ],
            "a",
            id="then-a-stable-order-so-every-replica-agrees",
        ),
    ],
)
def test_claims_precedence(bodies: list[dict[str, Any]], winner: str) -> None:
    claims = claims_of(*bodies)
    owner = claims.owner_of("AWSIoTTwinMaker", "x")
    assert owner is not None
    assert owner.uid == winner
    assert claims.claimants("AWSIoTTwinMaker", "x")[0].uid == winner


def test_claims_are_per_provider() -> None:
    claims = claims_of(body(external_id="x", status_id="x"))
    assert claims.owner_of("Truto", "x") is None


def test_a_local_claim_is_visible_before_the_index_echoes_it() -> None:
    index = indexed()
    claims = Claims()
    claims.attach(index.get)
    claims.claim(JOB, "id-1")
    other = dataclasses.replace(JOB, name="other", uid="u2")
    owner = claims.other_owner(other, "id-1")
    assert owner is not None
    assert owner.uid == JOB.uid
    assert claims.other_owner(JOB, "id-1") is None  # a job is never its own other owner
    # Once the watch delivers the annotation, the index entry and the local one are one claim.
    index.replace("u1", entries_of(body(external_id="id-1", status_id="id-1")))
    assert [c.uid for c in claims.claimants("AWSIoTTwinMaker", "id-1")] == ["u1"]


def test_a_new_local_claim_replaces_the_jobs_previous_one() -> None:
    claims = Claims()
    claims.claim(JOB, "id-1")
    claims.claim(JOB, "id-2")  # recreated: id-1 is not ours any more
    assert claims.owner_of("AWSIoTTwinMaker", "id-1") is None
    owner = claims.owner_of("AWSIoTTwinMaker", "id-2")
    assert owner is not None
    assert owner.uid == JOB.uid


def test_recorded_identity_supplies_the_id_a_stale_body_lacks() -> None:
    claims = Claims()
    assert claims.recorded_identity(JOB) is JOB  # nothing recorded: unchanged
    claims.claim(JOB, "id-1")
    seen = claims.recorded_identity(JOB)
    assert (seen.remote_id, seen.pending_create) == ("id-1", None)
    other = dataclasses.replace(JOB, uid="u2")
    assert claims.recorded_identity(other).remote_id is None  # only its own claims


def test_forget_drops_only_that_jobs_local_claims() -> None:
    claims = Claims()
    other = dataclasses.replace(JOB, name="other", uid="u2")
    claims.claim(JOB, "id-1")
    claims.claim(other, "id-2")
    claims.forget(JOB)
    assert claims.owner_of("AWSIoTTwinMaker", "id-1") is None
    assert claims.recorded_identity(JOB).remote_id is None
    kept = claims.owner_of("AWSIoTTwinMaker", "id-2")
    assert kept is not None
    assert kept.uid == "u2"


def test_is_live_and_secret_users_read_the_index() -> None:
    claims = claims_of(
        body(spec=TRUTO_SPEC),
        body(name="second", uid="u2", spec=TRUTO_SPEC),
        body(namespace="elsewhere", uid="u3", spec=TRUTO_SPEC),
    )
    assert claims.is_live("ns/job")
    assert claims.is_live("elsewhere/job")
    assert not claims.is_live("ns/gone")
    assert claims.secret_users("ns", "truto-token") == {"u1", "u2"}
    assert claims.secret_users("ns", "other") == set()


async def test_locks_are_per_scope() -> None:
    claims = Claims()
    async with claims.lock("a"):
        waiting = asyncio.create_task(_enter(claims, "a"))
        async with claims.lock("b"):  # another scope does not wait
            await asyncio.sleep(0.01)
            assert not waiting.done()  # the same scope does
    await waiting


async def _enter(claims: Claims, scope: str) -> None:
    async with claims.lock(scope):
        pass


@pytest.mark.parametrize(
    ("adopt", "remote_id", "observed", "index", "expected"),
    [
        pytest.param(False, "id-1", ACTIVE, [], "ours", id="recorded-id"),
        pytest.param(
            False, None, dataclasses.replace(ACTIVE, owner="ns/job"), [], "ours",
            id="owner-mark-names-us",
        ),
        pytest.param(False, None, ACTIVE, [], NOT_OWNED, id="unowned-not-asked"),
        pytest.param(True, None, ACTIVE, [], "adopt", id="unowned-asked"),
        pytest.param(
            True, None, dataclasses.replace(ACTIVE, conflict="syncRole r2"), [],
            ADOPTION_CONFLICT, id="unowned-asked-but-conflicting",
        ),
        pytest.param(
            True, None, dataclasses.replace(ACTIVE, owner="other/job"),
            [body(namespace="other", uid="u2")], OWNED_BY_ANOTHER,
            id="marked-for-a-live-syncjob-never-adopted",
        ),
        pytest.param(
            True, None, dataclasses.replace(ACTIVE, owner="other/job"), [], "adopt",
            id="marked-for-a-deleted-syncjob-adopted-when-asked",
        ),
        pytest.param(
            True, None, dataclasses.replace(ACTIVE, owner="other/job", conflict="syncRole r2"),
            [], ADOPTION_CONFLICT, id="stale-mark-still-checks-conflict",
        ),
        pytest.param(
            True, "id-1", ACTIVE,
            [body(namespace="other", uid="u2", external_id="id-1", status_id="id-1")],
            OWNED_BY_ANOTHER, id="recorded-by-another-beats-our-own-annotation",
        ),
    ],
)  # fmt: skip
def test_verdict(
    adopt: bool,
    remote_id: str | None,
    observed: Observation,
    index: list[dict[str, Any]],
    expected: str,
) -> None:
    job = dataclasses.replace(JOB.with_remote_id(remote_id), adopt=adopt)
    claims = claims_of(*index)
    if expected in ("ours", "adopt"):
        assert verdict(job, observed, claims) == expected
        return
    with pytest.raises(ProviderError) as raised:
        verdict(job, observed, claims)
    assert (raised.value.code, raised.value.retryable) == (expected, False)
    assert "id-1" in raised.value.message  # the user is told which remote job
