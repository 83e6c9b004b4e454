"""argocd/syncjob-health.lua over every case of argocd/health_test.yaml, in Lua 5.1 (the
language of gopher-lua, Argo CD's VM) with only the libraries Argo CD opens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lupa.lua51
import pytest
import yaml

from tests.chart.support import REPO

ARGOCD = REPO / "argocd"
SCRIPT = ARGOCD / "syncjob-health.lua"
CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]

# What the script may use: Argo CD's Lua VM has the base, table, string and math libraries,
# but no os, io, debug, package or require, so the script runs here with nothing else.
_SANDBOX = """
local source, obj = ...
local env = {
  obj = obj, ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring,
  tonumber = tonumber, select = select, unpack = unpack, error = error, pcall = pcall,
  string = string, table = table, math = math,
}
local chunk = assert(loadstring(source, "=syncjob-health.lua"))
setfenv(chunk, env)
return chunk()
"""


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Runs the health script on `obj` (as Argo CD converts it: from its JSON)."""
    lua = lupa.lua51.LuaRuntime(unpack_returned_tuples=False)
    assert lua.lua_version == (5, 1)
    run = lua.execute(f"return function(...) {_SANDBOX} end")
    table = lua.table_from(json.loads(json.dumps(obj)), recursive=True)
    result = run(SCRIPT.read_text(), table)
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_case(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert obj["kind"] == "SyncJob"
    assert health(obj) == case["healthStatus"]


def test_cases_cover_every_testdata_file_and_status() -> None:
    inputs = {c["inputPath"] for c in CASES}
    files = {f"testdata/{p.name}" for p in (ARGOCD / "testdata").glob("*.yaml")}
    assert inputs == files
    assert {c["healthStatus"]["status"] for c in CASES} == {"Healthy", "Progressing", "Degraded"}


def test_script_uses_no_library_argo_cd_lacks() -> None:
    """The sandbox is real: a script reaching for os fails there."""
    lua = lupa.lua51.LuaRuntime(unpack_returned_tuples=False)
    run = lua.execute(f"return function(...) {_SANDBOX} end")
    with pytest.raises(lupa.lua51.LuaError):
        run("return {status = os.date()}", lua.table())


def test_docs_snippet_is_the_script() -> None:
    """docs/argocd.md's argocd-cm snippet must not drift from the tested script."""
    text = (REPO / "docs" / "argocd.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    (configmap,) = [yaml.safe_load(b) for b in blocks if "kind: ConfigMap" in b]
    assert configmap["metadata"]["name"] == "argocd-cm"
    key = "resource.customizations.health.syncjob.dev_SyncJob"
    assert configmap["data"][key] == SCRIPT.read_text()
