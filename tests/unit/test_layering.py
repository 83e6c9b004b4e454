"""The module structure a newcomer relies on: kopf is imported in one package only."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "syncjob_operator"
KOPF_EDGE = PACKAGE / "kopf_edge"


def _imports_kopf(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(name == "kopf" or name.startswith("kopf.") for name in names):
            return True
    return False


def test_only_the_kopf_edge_imports_kopf() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if _imports_kopf(path)
    )
    outside = [name for name in importers if not name.startswith("kopf_edge/")]
    assert importers, "no module imports kopf: the scan is looking in the wrong place"
    assert outside == [], f"kopf imported outside {KOPF_EDGE.name}/: {outside}"
