"""The chart's Grafana dashboard and Prometheus alerts: they parse, every query names a metric
the operator exports, the alerts pass `promtool check rules` and fire in `promtool test rules`
exactly as written, and the chart ships both files unchanged."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric

from syncjob_operator.metrics import REGISTRY
from tests.chart.support import CHART, FULLNAME, find, render

MONITORING = CHART / "monitoring"
DASHBOARD = MONITORING / "dashboard.json"
ALERTS = MONITORING / "alerts.yaml"
ALERT_TESTS = Path(__file__).parent / "testdata" / "alerts_test.yaml"
_SERIES_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def _series_names(family: Metric) -> set[str]:
    return {family.name + suffix for suffix in _SERIES_SUFFIXES.get(family.type, ("",))}


EXPORTED = {name for family in REGISTRY.collect() for name in _series_names(family)}
# What Prometheus itself adds for every target.
BUILT_IN = {"up"}


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(syncjob_[a-z_]+|up)\b(?=\s*[{\[)]|\s*$|\s*==)", expr))


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def _alerts() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    return rules


def test_every_query_names_an_exported_metric() -> None:
    exprs = _dashboard_exprs() + [rule["expr"] for rule in _alerts()]
    used: set[str] = set()
    for expr in exprs:
        names = _metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= EXPORTED | BUILT_IN, (expr, names - EXPORTED - BUILT_IN)
        used |= names
    # The dashboard covers what the issue asked for: reconciles and their errors by provider,
    # remote call errors by code, objects by state, terminal errors.
    for wanted in (
        "syncjob_reconcile_total",
        "syncjob_remote_calls_total",
        "syncjob_objects",
        "syncjob_terminal_errors_total",
    ):
        assert wanted in used


def test_the_metric_name_check_can_fail() -> None:
    assert _metric_names('rate(syncjob_reconcile_totl{provider="Truto"}[5m])') - EXPORTED


def test_dashboard_is_grafana_json_with_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


def test_alerts_pass_promtool_check_and_fire_as_written(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, 'promtool is not on PATH; run: eval "$(hack/bootstrap.sh)"'
    check = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in check.stdout
    shutil.copy(ALERTS, tmp_path / "alerts.yaml")
    shutil.copy(ALERT_TESTS, tmp_path / "alerts_test.yaml")
    unit = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """The rule tests really evaluate: expecting an alert that cannot fire fails them."""
    promtool = shutil.which("promtool")
    assert promtool
    shutil.copy(ALERTS, tmp_path / "alerts.yaml")
    wrong = ALERT_TESTS.read_text().replace("eval_time: 15m", "eval_time: 3m", 1)
    (tmp_path / "alerts_test.yaml").write_text(wrong)
    unit = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yaml"], capture_output=True, cwd=tmp_path
    )
    assert unit.returncode != 0


def test_every_alert_says_how_bad_and_what_to_do() -> None:
    for rule in _alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_chart_ships_both_files_unchanged_only_when_asked() -> None:
    docs = render("monitoring")
    (dashboard,) = find(docs, "ConfigMap", f"{FULLNAME}-dashboard")
    assert json.loads(dashboard["data"]["syncjob-operator.json"]) == json.loads(
        DASHBOARD.read_text()
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (rule,) = find(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    default = render("default")
    assert not find(default, "PrometheusRule")
    assert not [
        d for d in find(default, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
