"""Every case of argocd/health_test.yaml evaluated by Argo CD itself (the pinned release
hack/build-argocd.sh builds): `argocd admin settings resource-overrides health` with the
health check registered in argocd-cm exactly as docs/argocd.md shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from syncjob_devtools.localargocd import ArgoCDError, evaluate_health
from tests.chart.support import REPO
from tests.support.argocd import argocd_health, documented_configmap

ARGOCD = REPO / "argocd"
SCRIPT = ARGOCD / "syncjob-health.lua"
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_case(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert obj["kind"] == "SyncJob"
    assert argocd_health(obj) == case["healthStatus"]


def test_cases_cover_every_testdata_file_and_status() -> None:
    inputs = {c["inputPath"] for c in CASES}
    files = {f"testdata/{p.name}" for p in (ARGOCD / "testdata").glob("*.yaml")}
    assert inputs == files
    assert {c["healthStatus"]["status"] for c in CASES} == {
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
    }
    # Statuses the operator wrote in the e2e runs, not only hand-written ones.
    assert len([f for f in files if Path(f).name.startswith("captured-")]) >= 4


def test_fixtures_hold_only_status_fields_the_crd_has() -> None:
    """A fixture with a status field the operator no longer writes tests nothing real."""
    crd = yaml.safe_load((REPO / "crds" / "syncjob.dev_syncjobs.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    allowed = set(version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"])
    for case in CASES:
        obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
        assert set(obj.get("status", {})) <= allowed, case["inputPath"]


def test_docs_snippet_is_the_script() -> None:
    """docs/argocd.md's argocd-cm snippet must not drift from the shipped script."""
    configmap = yaml.safe_load(documented_configmap())
    assert configmap["metadata"]["name"] == "argocd-cm"
    key = "resource.customizations.health.syncjob.dev_SyncJob"
    assert configmap["data"][key] == SCRIPT.read_text()


def test_a_script_error_is_not_mistaken_for_a_verdict(tmp_path: Path) -> None:
    """The evaluation is real: Argo CD's VM has no `os`, so a script using it fails there."""
    broken = documented_configmap().replace(
        "local hs = {}", "local hs = {}\nhs.when = os.time()", 1
    )
    assert broken != documented_configmap()
    cm = tmp_path / "argocd-cm.yaml"
    cm.write_text(broken)
    obj = yaml.safe_load((ARGOCD / CASES[0]["inputPath"]).read_text())
    with pytest.raises(ArgoCDError):
        evaluate_health(obj, cm, cm.parent)
