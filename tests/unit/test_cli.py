"""`syncjob-operator run`: counts of concurrent work must be at least one; peering priorities
are integers or seniority; kopf's request retries are logged once per request; a shard's
watches are filtered server-side."""

from __future__ import annotations

import argparse
import logging
import time

import kopf
import pytest
from kopf._cogs.structs import references

from syncjob_operator.kopf_edge.run import quiet_request_retries
from syncjob_operator.kopf_edge.settings import configure_settings
from syncjob_operator.reconcile import MAX_CONCURRENT_RECONCILES
from syncjob_operator.runner import add_run_arguments


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(argv)


def test_concurrent_reconciles_default_and_override() -> None:
    assert _parse().max_concurrent_reconciles == MAX_CONCURRENT_RECONCILES
    assert _parse("--max-concurrent-reconciles=8").max_concurrent_reconciles == 8


@pytest.mark.parametrize("flag", ["--max-concurrent-reconciles", "--aws-workers", "--kube-workers"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_counts_below_one_are_refused_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parse(f"{flag}={value}")
    assert f"argument {flag}: expected a whole number of at least 1" in capsys.readouterr().err


def test_priority_is_an_integer_or_seniority(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse().priority == 0
    assert _parse("--priority=100").priority == 100
    # Seniority: a replica started later ranks lower, so replicas never tie.
    older = _parse("--priority=seniority").priority
    time.sleep(0.002)
    younger = _parse("--priority=seniority").priority
    assert older > younger
    with pytest.raises(SystemExit):
        _parse("--priority=high")
    assert "expected an integer or 'seniority', got 'high'" in capsys.readouterr().err


def _attempt(number: int, then: str, error: str) -> logging.LogRecord:
    message = f"Request attempt #{number}/9 failed; {then}: PATCH https://api/x -> {error}"
    return logging.LogRecord("kopf.objects", logging.ERROR, "", 0, message, (), None)


@pytest.mark.parametrize(
    ("record", "kept"),
    [
        pytest.param(
            _attempt(1, "will retry", "ServerDisconnectedError('Server disconnected')"),
            "Request attempt #1/9 failed; will retry: PATCH https://api/x ->"
            " ServerDisconnectedError('Server disconnected')",
            id="the-first-attempt-says-a-request-failed",
        ),
        pytest.param(
            _attempt(4, "will retry", "ServerDisconnectedError('Server disconnected')"), None,
            id="the-retries-between-add-nothing",
        ),
        pytest.param(
            _attempt(9, "escalating", "ClientConnectorError(" + "x" * 300 + ")"),
            "Request attempt #9/9 failed; escalating: PATCH https://api/x -> ClientConnectorError("
            + "x" * 99 + "...",
            id="the-last-one-says-it-gave-up-its-repr-cut-short",
        ),
        pytest.param(
            logging.LogRecord("kopf.objects", logging.INFO, "", 0, "Handler 'apply' %s.",
                              ("succeeded",), None),
            "Handler 'apply' succeeded.", id="other-lines-pass-as-they-are",
        ),
    ],
)  # fmt: skip
def test_kopf_request_attempts_first_and_last_kept_short(
    record: logging.LogRecord, kept: str | None
) -> None:
    assert (record.getMessage() if quiet_request_retries(record) else None) == kept


def test_a_shard_watches_only_its_own_syncjobs_and_held_secrets_server_side() -> None:
    """kopf releases its finalizer from objects no deletion handler of its own matches: a shard
    that saw other shards' SyncJobs would strip their finalizers."""
    settings = kopf.OperatorSettings()
    configure_settings(settings, shard={"tier": "a", "syncjob.dev/shard": "blue"}, secret_hold="h")
    syncjobs = references.Resource("syncjob.dev", "v1alpha1", "syncjobs", namespaced=True)
    secrets = references.Resource("", "v1", "secrets", namespaced=True)
    selectors = settings.watching.label_selectors
    assert selectors.collect(syncjobs) == ["syncjob.dev/shard=blue,tier=a"]
    assert selectors.collect(secrets) == ["h=true"]
    unsharded = kopf.OperatorSettings()
    configure_settings(unsharded)
    assert unsharded.watching.label_selectors.collect(syncjobs) == []
