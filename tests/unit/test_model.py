"""model: the create-pending marker, the owner value, and what a SyncJob body records."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from typing import Any

import pytest

from syncjob_operator.kube import SECRET_HOLD, secret_hold
from syncjob_operator.model import (
    ADOPTION_POLICY_ANNOTATION,
    CREATE_PENDING_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    PendingCreate,
    SyncJob,
    owner_value,
)
from tests.unit.jobs import TRUTO_SPEC, TWINMAKER_JOB, TWINMAKER_SPEC, body

STARTED = datetime.datetime(2026, 1, 1, 12, 0, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("pending", "encoded"),
    [
        pytest.param(PendingCreate(STARTED, "abc123"), "2026-01-01T12:00:05Z abc123", id="utc"),
        pytest.param(
            PendingCreate(
                STARTED.astimezone(datetime.timezone(datetime.timedelta(hours=2))), "abc123"
            ),
            "2026-01-01T12:00:05Z abc123",
            id="other-zones-are-written-as-utc",
        ),
    ],
)
def test_pending_create_round_trips_through_its_annotation(
    pending: PendingCreate, encoded: str
) -> None:
    assert pending.encode() == encoded
    decoded = PendingCreate.decode(encoded)
    assert decoded == PendingCreate(STARTED, "abc123")
    assert decoded is not None
    # The answered marker is compared encoded: it must survive a round trip unchanged.
    assert decoded.encode() == encoded


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(None, "no annotation", id="absent"),
        pytest.param("", "emptied by hand", id="empty"),
        pytest.param("yesterday abc", "not a timestamp", id="garbage-time"),
        pytest.param(" abc", "hash without a time", id="missing-time"),
        pytest.param("2026-13-01T00:00:00Z abc", "month 13", id="impossible-date"),
    ],
)
def test_an_unreadable_marker_counts_as_absent(text: str | None, reason: str) -> None:
    assert PendingCreate.decode(text) is None, reason


def test_a_marker_without_a_zone_is_read_as_utc() -> None:
    assert PendingCreate.decode("2026-01-01T12:00:05 h") == PendingCreate(STARTED, "h")
    # Without its content hash no leftover could ever be matched: unreadable, so absent.
    assert PendingCreate.decode("2026-01-01T12:00:05Z") is None


@pytest.mark.parametrize(
    ("namespace", "name", "hashed"),
    [
        pytest.param("ns", "job", False, id="short-is-readable"),
        pytest.param("n" * 63, "j" * 192, False, id="exactly-256-is-kept"),
        pytest.param("n" * 63, "j" * 193, True, id="257-is-hashed-tag-values-stop-at-256"),
        pytest.param("n" * 63, "j" * 253, True, id="longest-kubernetes-names"),
    ],
)
def test_owner_value_fits_a_tag_value(namespace: str, name: str, hashed: bool) -> None:
    value = owner_value(namespace, name)
    plain = f"{namespace}/{name}"
    assert len(value) <= 256
    if hashed:
        assert value == "sha256:" + hashlib.sha256(plain.encode()).hexdigest()
        assert value != owner_value(namespace, name[:-1] + "x")  # still tells names apart
    else:
        assert value == plain


def _job(**kwargs: Any) -> SyncJob:
    return SyncJob.from_body(body(**kwargs))


def test_from_body_reads_the_operators_annotations_and_status() -> None:
    job = _job(
        annotations={
            EXTERNAL_ID_ANNOTATION: "arn:ann",
            CREATE_PENDING_ANNOTATION: "2026-01-01T12:00:05Z h1",
            ADOPTION_POLICY_ANNOTATION: "adopt",
        },
        status={"remote": {"id": "arn:status", "scheduleId": "t-1"}},
        created="2025-05-05T00:00:00Z",
        deleting=True,
    )
    assert job.external_id == "arn:ann"
    assert job.status_id == "arn:status"
    assert job.remote_id == "arn:ann"  # the annotation survives a restore; status does not
    assert job.remote_schedule_id == "t-1"
    assert job.pending_create == PendingCreate(STARTED, "h1")
    assert job.adopt
    assert (job.created_at, job.deleting, job.generation) == ("2025-05-05T00:00:00Z", True, 3)
    assert job.owner == "ns/job"


@pytest.mark.parametrize(
    ("annotations", "status_id", "remote_id", "adopt"),
    [
        pytest.param({}, "arn:s", "arn:s", False, id="status-alone-after-kubectl-replace"),
        pytest.param({EXTERNAL_ID_ANNOTATION: ""}, "arn:s", "arn:s", False, id="empty-annotation"),
        pytest.param({EXTERNAL_ID_ANNOTATION: "arn:a"}, None, "arn:a", False, id="restored"),
        pytest.param({}, None, None, False, id="never-created"),
        pytest.param({ADOPTION_POLICY_ANNOTATION: "adopt"}, None, None, True, id="adopt"),
        pytest.param({ADOPTION_POLICY_ANNOTATION: "Adopt"}, None, None, False, id="case-matters"),
        pytest.param({ADOPTION_POLICY_ANNOTATION: "never"}, None, None, False, id="other-policy"),
    ],
)
def test_remote_id_and_adoption_policy(
    annotations: dict[str, str], status_id: str | None, remote_id: str | None, adopt: bool
) -> None:
    job = _job(annotations=annotations, status_id=status_id)
    assert (job.remote_id, job.adopt, job.pending_create) == (remote_id, adopt, None)


def test_with_remote_id_records_the_identity_and_ends_the_pending_create() -> None:
    pending = dataclasses.replace(TWINMAKER_JOB, pending_create=PendingCreate(STARTED, "h"))
    recorded = pending.with_remote_id("arn:x")
    assert (recorded.external_id, recorded.status_id, recorded.pending_create) == (
        "arn:x",
        "arn:x",
        None,
    )
    assert pending.with_remote_id(None) is pending


def test_spec_parses_aliases_and_defaults() -> None:
    spec = {
        "awsIoTTwinMaker": {
            **TWINMAKER_SPEC["awsIoTTwinMaker"],
            "endpointURL": "http://e",
            "credentialsSecretRef": {"name": "c"},
        }
    }
    job = _job(spec=spec)
    assert job.spec.provider == "AWSIoTTwinMaker"
    assert job.spec.deletion_policy == "Delete"
    assert job.spec.twinmaker is not None
    assert job.spec.twinmaker.endpoint_url == "http://e"
    assert job.spec.twinmaker.credentials_secret_ref is not None
    assert job.spec.twinmaker.credentials_secret_ref.access_key_id_key == "AWS_ACCESS_KEY_ID"
    assert job.spec.secret_names() == {"c"}
    assert _job(spec=TRUTO_SPEC).spec.secret_names() == {"truto-token"}
    # The fingerprint survives a dump and re-parse, and tells specs apart.
    again = _job(spec=job.spec.model_dump(by_alias=True, mode="json"))
    assert again.spec.fingerprint() == job.spec.fingerprint()
    assert _job(spec=TWINMAKER_SPEC).spec.fingerprint() != job.spec.fingerprint()


def test_each_shard_holds_secrets_with_its_own_finalizer() -> None:
    unsharded = secret_hold({})
    shard_a = secret_hold({"syncjob.dev/shard": "a"})
    assert unsharded == SECRET_HOLD
    assert shard_a.startswith(f"{SECRET_HOLD}-")
    assert shard_a == secret_hold({"syncjob.dev/shard": "a"})  # stable across restarts
    assert shard_a != secret_hold({"syncjob.dev/shard": "b"})
    # Order of the selector's labels does not matter; the name stays a valid finalizer.
    assert secret_hold({"a": "1", "b": "2"}) == secret_hold({"b": "2", "a": "1"})
    assert len(shard_a.split("/", 1)[1]) <= 63
