"""Error classification and spec <-> API mapping, with real botocore and httpx types."""

from __future__ import annotations

import datetime
import random
from typing import Any

import botocore.exceptions
import httpx
import pytest

from syncjob_operator.metrics import REGISTRY, count_failed_call
from syncjob_operator.model import PendingCreate, SyncJobSpec
from syncjob_operator.providers import truto, twinmaker
from syncjob_operator.providers.truto import created_since
from syncjob_operator.reconcile import Timing, retry_delay
from syncjob_operator.runner import _connected
from tests.unit.fakes import FakeProvider


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }  # the stubs' TypedDict wants every metadata key botocore would fill in
    return botocore.exceptions.ClientError(response, "Op")


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (_client_error("ThrottlingException", 429), "ThrottlingException", True),
        (_client_error("InternalServerException", 500), "InternalServerException", True),
        (_client_error("SomethingNew", 503), "SomethingNew", True),  # any 5xx retries
        (_client_error("ValidationException", 400), "ValidationException", False),
        (_client_error("AccessDeniedException", 403), "AccessDeniedException", False),
        (
            _client_error("ServiceQuotaExceededException", 402),
            "ServiceQuotaExceededException",
            False,
        ),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
            "ConnectionError",
            True,
        ),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), "ConnectionError", True),
        (botocore.exceptions.NoCredentialsError(), "CredentialsMissing", False),
    ],
)
def test_twinmaker_errors_are_classified_once(error: Exception, code: str, retryable: bool) -> None:
    classified = twinmaker.classify(error, "CreateSyncJob")
    assert (classified.code, classified.retryable, classified.operation) == (
        code,
        retryable,
        "CreateSyncJob",
    )


@pytest.mark.parametrize(
    ("status", "headers", "code", "retryable", "retry_after"),
    [
        (429, {"ratelimit-reset": "7"}, "RateLimited", True, 7.0),
        (503, {"ratelimit-reset": "60"}, "ServerError503", True, None),  # reset means nothing here
        (503, {"retry-after": "2"}, "ServerError503", True, 2.0),
        (401, {}, "Unauthorized", False, None),
        (403, {}, "Forbidden", False, None),
        (400, {}, "ValidationError", False, None),
        (409, {}, "HTTP409", False, None),
    ],
)
def test_truto_errors_are_classified_once(
    status: int, headers: dict[str, str], code: str, retryable: bool, retry_after: float | None
) -> None:
    response = httpx.Response(
        status, headers=headers, json={"statusCode": status, "message": "why"}
    )
    classified = truto.classify(response, "CreateSyncJob")
    assert (classified.code, classified.retryable, classified.retry_after) == (
        code,
        retryable,
        retry_after,
    )
    assert classified.message == "why"


def test_tag_changes_send_only_the_difference() -> None:
    to_tag, to_untag = twinmaker.tag_changes(
        {"a": "1", "b": "new", "c": "3"}, {"a": "1", "b": "old", "d": "4"}
    )
    assert to_tag == {"b": "new", "c": "3"}
    assert to_untag == ["d"]


def test_truto_body_and_patch_carry_only_what_changed() -> None:
    spec = SyncJobSpec.model_validate(
        {
            "truto": {
                "integrationName": "hubspot",
                "argsSchema": {"type": "object"},
                "resources": [{"resource": "crm/contacts", "method": "list", "loopOn": "ids"}],
                "tokenSecretRef": {"name": "s", "key": "k"},
            }
        }
    )
    assert spec.truto is not None
    body = truto.desired_body(spec.truto)
    assert body["resources"] == [{"resource": "crm/contacts", "method": "list", "loop_on": "ids"}]
    remote = {
        **body,
        "id": "x",
        "resources": [{"resource": "crm/contacts", "method": "list", "loop_on": "ids", "id": None}],
    }
    assert truto.changed_fields(body, remote) == {}  # null echoed back equals absent
    assert truto.changed_fields(
        body, {**remote, "args_schema": {"type": "object", "properties": {}}}
    ) == {"args_schema": {"type": "object"}}


@pytest.mark.parametrize("field", ["result", "results"])
def test_truto_list_pages_are_read_from_result_or_results(field: str) -> None:
    assert truto.list_page({field: [{"id": "a"}], "next_cursor": "c2"}) == ([{"id": "a"}], "c2")
    assert truto.list_page({field: [], "next_cursor": None}) == ([], None)


def test_adoption_window_allows_small_clock_skew_only() -> None:
    started = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    pending = PendingCreate(started_at=started, content_hash="h")
    assert created_since(pending.started_at, started - datetime.timedelta(seconds=10))
    assert not created_since(pending.started_at, started - datetime.timedelta(minutes=5))
    assert not created_since(None, started)


def test_retry_delay_grows_exponentially_with_jitter_and_respects_the_cap() -> None:
    random.seed(7)
    timing = Timing(backoff_base_seconds=1, backoff_cap_seconds=60)
    delays = [retry_delay(attempt, timing) for attempt in range(10)]
    for attempt, delay in enumerate(delays):
        ceiling = min(60, 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert retry_delay(0, timing, retry_after=30) == 30  # never sooner than the provider asked


WANTED = {"cron_expression": "0 * * * *", "integrated_account_id": "acct", "args": {}}


@pytest.mark.parametrize(
    ("desired", "triggers", "expected"),
    [
        pytest.param(WANTED, [], truto.ScheduleChanges(create=WANTED), id="missing-is-created"),
        pytest.param(
            WANTED,
            [{"id": "t1", "created_at": "1", **WANTED}],
            truto.ScheduleChanges(),
            id="in-sync",
        ),
        pytest.param(
            WANTED,
            [{"id": "t1", "created_at": "1", **WANTED, "cron_expression": "5 * * * *"}],
            truto.ScheduleChanges(patch=("t1", {"cron_expression": "0 * * * *"})),
            id="changed-field-is-patched-alone",
        ),
        pytest.param(
            WANTED,
            [{"id": "t2", "created_at": "2", **WANTED}, {"id": "t1", "created_at": "1", **WANTED}],
            truto.ScheduleChanges(delete=("t2",)),
            id="extra-triggers-go-oldest-stays",
        ),
        pytest.param(
            None,
            [{"id": "t1"}, {"id": "t2"}],
            truto.ScheduleChanges(delete=("t1", "t2")),
            id="unscheduled",
        ),
        pytest.param(None, [], truto.ScheduleChanges(), id="nothing-to-do"),
    ],
)
def test_schedule_changes(
    desired: dict[str, object] | None,
    triggers: list[dict[str, object]],
    expected: truto.ScheduleChanges,
) -> None:
    assert truto.schedule_changes(desired, triggers) == expected


async def test_every_provider_is_connected_then_closed_even_after_a_crash() -> None:
    providers = {"AWSIoTTwinMaker": FakeProvider(), "Truto": FakeProvider(name="Truto")}
    with pytest.raises(RuntimeError):
        async with _connected(providers):  # type: ignore[arg-type]
            raise RuntimeError("kopf stopped")
    assert [p.journal for p in providers.values()] == [["connect", "close"]] * 2


@pytest.mark.parametrize(
    ("reason", "error", "throttled"),
    [
        ("TwinMaker's model code, 429", _client_error("ThrottlingException", 429), True),
        ("older AWS APIs throttle with a 400", _client_error("Throttling", 400), True),
        ("a 429 under any code", _client_error("SomethingNew", 429), True),
        ("a server error is not throttling", _client_error("InternalServerException", 500), False),
        ("nor a quota", _client_error("ServiceQuotaExceededException", 402), False),
    ],
)
def test_twinmaker_throttling_is_marked(reason: str, error: Exception, throttled: bool) -> None:
    assert twinmaker.classify(error, "GetSyncJob").throttled is throttled, reason


@pytest.mark.parametrize(("status", "throttled"), [(429, True), (503, False), (400, False)])
def test_truto_throttling_is_marked(status: int, throttled: bool) -> None:
    response = httpx.Response(status, json={"statusCode": status, "message": "m"})
    assert truto.classify(response, "ListSyncJobs").throttled is throttled


def test_a_throttled_call_moves_the_throttled_counter_by_provider_and_operation() -> None:
    labels = {"provider": "AWSIoTTwinMaker", "operation": "GetSyncJob"}

    def throttled() -> float:
        return REGISTRY.get_sample_value("syncjob_throttled_calls_total", labels) or 0.0

    before = throttled()
    count_failed_call(
        "AWSIoTTwinMaker", twinmaker.classify(_client_error("Throttling", 400), "GetSyncJob")
    )
    count_failed_call("AWSIoTTwinMaker", twinmaker.classify(_client_error("X", 500), "GetSyncJob"))
    assert throttled() == before + 1
