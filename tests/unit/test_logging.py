"""`--verbose` turns the operator's own logging to DEBUG but never the HTTP clients': at DEBUG
they log request and response bodies, Secret data and signing details included."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from syncjob_operator.runner import add_run_arguments, configure_logging

# Listed here, not imported from the runner: removing one there must fail this test.
CLIENT_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "botocore",
    "botocore.endpoint",
    "botocore.auth",
    "boto3",
    "httpx",
    "httpcore",
    "httpcore.http11",
    "kubernetes",
    "kubernetes.client.rest",
    "aiohttp",
    "aiohttp.client",
)


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging sets process-wide logging: put it back for the other tests."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    names = [*CLIENT_LOGGERS, "kopf", "kopf.objects"]
    saved = {
        name: (logging.getLogger(name).level, list(logging.getLogger(name).filters))
        for name in names
    }
    yield
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, (level, filters) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).filters[:] = filters


@pytest.mark.parametrize("log_format", ["plain", "json"])
@pytest.mark.usefixtures("restored_logging")
def test_verbose_logs_the_operator_at_debug_and_no_http_client_below_warning(
    log_format: str,
) -> None:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    configure_logging(parser.parse_args(["--verbose", f"--log-format={log_format}"]))

    assert logging.getLogger("kopf.objects").isEnabledFor(logging.DEBUG)  # really verbose
    assert logging.getLogger("syncjob_operator").isEnabledFor(logging.DEBUG)
    at_debug = [
        name for name in CLIENT_LOGGERS if logging.getLogger(name).isEnabledFor(logging.DEBUG)
    ]
    at_info = [
        name for name in CLIENT_LOGGERS if logging.getLogger(name).isEnabledFor(logging.INFO)
    ]
    assert at_debug == at_info == []
