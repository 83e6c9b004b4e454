"""The chart's crds/ is a byte-for-byte copy of the repository's crds/ (hack/sync-chart-crds.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.chart.support import CHART, REPO

TOP = REPO / "crds"
SYNC = REPO / "hack" / "sync-chart-crds.sh"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.yaml"))}


def test_chart_crds_are_identical_to_the_top_level_crds() -> None:
    top, chart = _files(TOP), _files(CHART / "crds")
    assert top, "no CRDs in crds/"
    assert sorted(chart) == sorted(top), "run hack/sync-chart-crds.sh"
    differ = [name for name in top if chart[name] != top[name]]
    assert not differ, f"{differ} differ from crds/: run hack/sync-chart-crds.sh"


def test_the_crds_are_syncjobs_and_kopf_peerings() -> None:
    names = {
        crd["metadata"]["name"]: crd
        for path in TOP.glob("*.yaml")
        for crd in yaml.safe_load_all(path.read_text())
    }
    assert set(names) == {
        "syncjobs.syncjob.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    assert names["clusterkopfpeerings.kopf.dev"]["spec"]["scope"] == "Cluster"
    assert names["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"
    for crd in names.values():
        # Argo CD creates CRDs before the objects of the same sync.
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-10"


def test_sync_script_copies_and_prunes(tmp_path: Path) -> None:
    """Runs the script on a copy of the repository layout: new and changed CRDs are copied,
    ones gone from crds/ are removed from the chart."""
    (tmp_path / "hack").mkdir()
    shutil.copy(SYNC, tmp_path / "hack" / SYNC.name)
    shutil.copytree(TOP, tmp_path / "crds")
    chart_crds = tmp_path / "charts" / "syncjob-operator" / "crds"
    chart_crds.mkdir(parents=True)
    (chart_crds / "removed.yaml").write_text("kind: CustomResourceDefinition\n")
    first = next(iter(_files(TOP)))
    (chart_crds / first).write_text("# stale\n")
    subprocess.run(["bash", str(tmp_path / "hack" / SYNC.name)], check=True, capture_output=True)
    assert _files(chart_crds) == _files(TOP)
