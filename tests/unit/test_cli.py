"""`syncjob-operator run` flags: counts of concurrent work must be at least one; peering
priorities are integers or seniority."""

from __future__ import annotations

import argparse
import time

import pytest

from syncjob_operator.handlers import MAX_CONCURRENT_RECONCILES
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
