"""Pure parts of the emulators: paging, faults, counters, rate limits, model validation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from syncjob_devtools.emulators.faults import CallCounters, FaultBook, FaultRule
from syncjob_devtools.emulators.paging import InvalidPageToken, paginate
from syncjob_devtools.emulators.restjson import AwsError, load_service_model, validate
from syncjob_devtools.emulators.throttling import RequestRate, TokenBuckets
from syncjob_devtools.emulators.truto import RateLimiter, TrutoConfig, validate_cron
from syncjob_devtools.emulators.truto import create_app as create_truto
from syncjob_devtools.emulators.twinmaker import SyncJobRecord, Transition, sitewise_resources
from syncjob_devtools.emulators.twinmaker import create_app as twinmaker_app


def test_pages_resume_after_the_last_key_even_when_items_vanish() -> None:
    items = ["a", "b", "c", "d", "e"]
    first, token = paginate(items, str, 2, None)
    assert (first, token is not None) == (["a", "b"], True)
    # "b" deleted between pages: the next page still starts at "c", not at "d".
    second, token = paginate(["a", "c", "d", "e"], str, 2, token)
    assert second == ["c", "d"]
    last, token = paginate(items, str, 2, token)
    assert (last, token) == (["e"], None)


@pytest.mark.parametrize("token", ["junk!", "e30", "eyJhZnRlciI6IDF9"])  # bad b64, {}, {"after": 1}
def test_foreign_page_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidPageToken):
        paginate(["a"], str, 1, token)


async def test_next_n_fault_fails_n_calls_then_removes_itself() -> None:
    book = FaultBook(CallCounters())
    book.add(
        FaultRule(operation="GetSyncJob", status=500, code="InternalServerException", next_n=2)
    )
    assert (await book.inject("ListSyncJobs")).before_commit is None  # others untouched
    first, second = await book.inject("GetSyncJob"), await book.inject("GetSyncJob")
    assert first.before_commit is not None
    assert second.before_commit is not None
    assert first.before_commit.status == 500
    assert (await book.inject("GetSyncJob")).before_commit is None
    assert book.active() == []


async def test_wildcard_fault_with_zero_rate_adds_latency_but_never_errors() -> None:
    book = FaultBook(CallCounters())
    book.add(FaultRule(operation="*", latency_ms=1, status=503, error_rate=0.0))
    assert all([(await book.inject(op)).before_commit is None for op in ("A", "B", "C")])
    assert len(book.active()) == 1


async def test_response_delay_is_held_after_the_operation_not_before() -> None:
    book = FaultBook(CallCounters())
    book.add(FaultRule(operation="CreateSyncJob", response_delay_ms=250, next_n=1))
    injection = await book.inject("CreateSyncJob")
    assert (injection.before_commit, injection.response_delay_ms) == (None, 250)
    assert (await book.inject("CreateSyncJob")).response_delay_ms == 0  # next_n used up


async def test_after_commit_failures_are_kept_apart_from_those_before() -> None:
    book = FaultBook(CallCounters())
    book.add(FaultRule(operation="CreateSyncJob", drop_connection=True, after_commit=True))
    book.add(FaultRule(operation="*", status=503, next_n=1))
    injection = await book.inject("CreateSyncJob")
    assert injection.before_commit is not None
    assert injection.before_commit.status == 503
    assert injection.after_commit is not None
    assert injection.after_commit.drop_connection
    assert injection.kinds() == ["503 before", "connection reset after commit"]


async def test_a_response_delay_at_a_rate_holds_only_the_calls_it_draws() -> None:
    counters = CallCounters()
    book = FaultBook(counters)
    book.add(FaultRule(operation="DeleteSyncJob", response_delay_ms=5, error_rate=0.5))
    delays = [(await book.inject("DeleteSyncJob")).response_delay_ms for _ in range(200)]
    assert 50 < delays.count(5) < 150
    assert set(delays) == {0, 5}
    assert counters.snapshot()["injected"] == {"DeleteSyncJob": {"response delay": delays.count(5)}}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"latency_ms": 0},
        {"error_rate": 0.5},
        {"status": 200},
        {"latency_ms": 5, "bogus": 1},
        {"latency_ms": 5, "after_commit": True},  # nothing to fail after the commit
        {"status": 500, "drop_connection": True},  # a reset carries no status
    ],
)
def test_fault_rules_without_an_effect_or_with_bad_fields_are_refused(
    fields: dict[str, object],
) -> None:
    with pytest.raises(ValidationError):
        FaultRule.model_validate(fields)


def test_counters_keep_operations_and_objects_apart() -> None:
    counters = CallCounters()
    counters.record("GetSyncJob", "ws/SITEWISE")
    counters.record("ListWorkspaces")
    counters.record("CreateSyncJob")
    counters.record_object("CreateSyncJob", "job-1")
    counters.record_signer("ASIAEXAMPLE", "GetSyncJob", "ws/SITEWISE")
    counters.record_signer("ASIAEXAMPLE", "ListWorkspaces")
    assert counters.snapshot() == {
        "operations": {"GetSyncJob": 1, "ListWorkspaces": 1, "CreateSyncJob": 1},
        "objects": {"ws/SITEWISE": {"GetSyncJob": 1}, "job-1": {"CreateSyncJob": 1}},
        "signers": {"ASIAEXAMPLE": {"GetSyncJob": 1, "ListWorkspaces": 1}},
        "object_signers": {"ws/SITEWISE": {"ASIAEXAMPLE": 1}},
        "injected": {},
        "throttled": {},
    }
    counters.clear()
    assert all(tally == {} for tally in counters.snapshot().values())


def test_token_buckets_refill_at_the_rate_up_to_the_burst_per_account_and_operation() -> None:
    buckets = TokenBuckets({"GetSyncJob": RequestRate(per_second=2, burst=3)})
    assert [buckets.take("111", "GetSyncJob", 100.0) for _ in range(4)] == [True] * 3 + [False]
    assert buckets.take("222", "GetSyncJob", 100.0)  # another account: its own bucket
    assert buckets.take("111", "ListSyncJobs", 100.0)  # no rate for it: never throttled
    assert buckets.take("111", "GetSyncJob", 100.5)  # 0.5 s at 2/s: one token back
    assert not buckets.take("111", "GetSyncJob", 100.5)
    assert [buckets.take("111", "GetSyncJob", 200.0) for _ in range(4)] == [True] * 3 + [False]


def test_rate_limiter_windows_are_per_token_and_roll_over() -> None:
    limiter = RateLimiter(2, 10.0)
    assert [limiter.hit("a", 100.0)[0] for _ in range(3)] == [True, True, False]
    assert limiter.hit("b", 101.0)[0]  # another token has its own window
    allowed, headers = limiter.hit("a", 104.0)
    assert not allowed
    assert headers["ratelimit-reset"] == "6" == headers["retry-after"]
    allowed, headers = limiter.hit("a", 110.0)
    assert allowed
    assert headers["ratelimit-remaining"] == "1"


@pytest.mark.parametrize(
    ("expression", "valid"),
    [
        ("* * * * *", True),
        ("0 12 * * sun", True),
        ("1-59/2 0 1 jan-dec 7", True),
        ("* * * *", False),
        ("a * * * *", False),
        ("1-2-3 * * * *", False),
        ("0 0 32 * *", False),
    ],
)
def test_cron_expressions(expression: str, valid: bool) -> None:
    if valid:
        assert validate_cron(expression) == expression
    else:
        with pytest.raises(ValueError, match="field"):
            validate_cron(expression)


def _problems(operation: str, params: dict[str, object]) -> list[str]:
    shape = load_service_model("iottwinmaker").operation_model(operation).input_shape
    assert shape is not None
    problems: list[str] = []
    validate(shape, params, "", problems)
    return problems


def test_model_constraints_produce_coral_style_messages() -> None:
    problems = _problems(
        "CreateSyncJob", {"workspaceId": "-bad-", "syncSource": "SITEWISE", "tags": {"k": ""}}
    )
    assert problems == [
        "Value null at 'syncRole' failed to satisfy constraint: Member must not be null",
        "Value '-bad-' at 'workspaceId' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [a-zA-Z_0-9][a-zA-Z_\\-0-9]*[a-zA-Z0-9]+",
        "Value '' at 'tags.k.value' failed to satisfy constraint: Member must have length "
        "greater than or equal to 1",
    ]


def test_java_unicode_classes_in_model_patterns_accept_unicode_tag_keys() -> None:
    arn = "arn:aws:iottwinmaker:us-east-1:123456789012:workspace/w"
    assert _problems("TagResource", {"resourceARN": arn, "tags": {"Ünïcode key 1": "v"}}) == []


def test_json_type_mismatch_is_a_serialization_error() -> None:
    with pytest.raises(AwsError) as excinfo:
        _problems("ListSyncJobs", {"workspaceId": "w", "maxResults": "10"})
    assert excinfo.value.code == "SerializationException"


def test_synthesized_resources_follow_the_job_state() -> None:
    job = SyncJobRecord(
        workspace_id="w",
        sync_source="SITEWISE",
        sync_role="arn:aws:iam::123456789012:role/r",
        arn="arn:aws:iottwinmaker:us-east-1:123456789012:workspace/w/sync-job/SITEWISE",
        created=100.0,
        transitions=[
            Transition(at=100.0, state="CREATING"),
            Transition(at=101.0, state="INITIALIZING"),
            Transition(at=102.0, state="ERROR", code="SYNC_PROCESSING_ERROR", message="m"),
            Transition(at=103.0, state="DELETING"),
        ],
    )
    assert sitewise_resources(job, 100.5) == []  # nothing synced while CREATING
    states = {
        now: {r["status"]["state"] for r in sitewise_resources(job, now)}
        for now in (101.5, 102.5, 103.5)
    }
    assert states == {101.5: {"INITIALIZING"}, 102.5: {"ERROR"}, 103.5: {"DELETED"}}
    errored = sitewise_resources(job, 102.5)
    assert errored[0]["status"]["error"] == {"code": "SYNC_PROCESSING_ERROR", "message": "m"}
    assert [r["externalId"] for r in errored] == [
        r["externalId"] for r in sitewise_resources(job, 103.5)
    ]


def truto_app() -> Starlette:
    return create_truto(TrutoConfig(tokens=frozenset({"t"})))


@pytest.mark.parametrize(
    ("app", "path"),
    [
        pytest.param(truto_app, "/sync-job", id="truto"),
        pytest.param(twinmaker_app, "/workspaces/ws/sync-jobs/SITEWISE", id="twinmaker"),
    ],
)
async def test_a_client_gone_mid_request_is_a_quiet_499_not_a_traceback(
    app: Callable[[], Starlette], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}  # the operator was SIGKILLed while sending

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", b"Bearer t"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    with caplog.at_level(logging.INFO):
        await app()(scope, receive, send)

    assert sent[0]["status"] == 499
    assert [r.getMessage() for r in caplog.records] == [f"client disconnected during POST {path}"]
