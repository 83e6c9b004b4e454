"""Argo CD's own verdict on a SyncJob's health: the shipped health check, registered in an
argocd-cm exactly as docs/argocd.md shows it, evaluated by the Argo CD binary."""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from syncjob_devtools.localargocd import evaluate_health

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "argocd.md"


@cache
def documented_configmap() -> str:
    """The argocd-cm ConfigMap of docs/argocd.md, as a user would copy it."""
    text = DOCS.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    (configmap,) = [b for b in blocks if "kind: ConfigMap" in b]
    return configmap


@cache
def _configmap_file() -> Path:
    path = Path(tempfile.mkdtemp(prefix="argocd-cm-")) / "argocd-cm.yaml"
    path.write_text(documented_configmap())
    return path


def argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    """What Argo CD shows for `obj`: {"status": ..., "message": ...}."""
    cm = _configmap_file()
    return evaluate_health(obj, cm, cm.parent)


def capture(fixture: str, obj: dict[str, Any]) -> None:
    """With SYNCJOB_CAPTURE_HEALTH_FIXTURES=<dir>, keeps a live SyncJob as a health fixture:
    how argocd/testdata/captured-*.yaml were made (the e2e tests call this)."""
    target = os.environ.get("SYNCJOB_CAPTURE_HEALTH_FIXTURES")
    if not target:
        return
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    header = "# Captured from the operator's e2e run (tests/e2e/test_gitops.py).\n"
    text = header + yaml.safe_dump({**obj, "metadata": meta}, sort_keys=False)
    Path(target, f"captured-{fixture}.yaml").write_text(text)
