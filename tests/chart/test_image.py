"""The Dockerfile, without a Docker engine: hadolint, its shape, and its build stage replayed
step by step (the same COPYs from a context filtered by .dockerignore, the same install
script) into a venv under a temp dir, whose `syncjob-operator` must then run."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import httpx

from syncjob_devtools.localcluster import ControlPlane, free_port
from tests.chart.support import REPO
from tests.support.kube import Cli, wait_until

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INSTALL_SCRIPT = "hack/install-package.sh"
# The test process runs in the dev venv; a build container has none of this.
_HOST_PYTHON_ENV = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"}


def _container_env() -> dict[str, str]:
    """This process's environment without the dev venv's Python settings."""
    return {k: v for k, v in os.environ.items() if k not in _HOST_PYTHON_ENV}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and ARGs expanded
    in FROM lines. Enough Dockerfile for this one; not a general parser."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def test_hadolint_is_clean() -> None:
    proc = subprocess.run(
        ["hadolint", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not proc.stdout.strip(), proc.stdout


def test_dockerfile_shape() -> None:
    _args, stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) == 2
    assert stages[0].name == "build"
    build, final = stages
    # One pinned slim Python 3.11 base, by full version tag, for both stages.
    assert build.base == final.base
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", final.base), final.base
    instructions = dict(final.instructions)
    assert instructions["USER"] == "10001:10001"
    assert instructions["ENTRYPOINT"] == '["syncjob-operator"]'
    assert instructions["CMD"] == '["run"]'
    # The final stage copies the venv from the build stage and installs nothing itself.
    copies = [rest for keyword, rest in final.instructions if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    runs = " ".join(rest for keyword, rest in final.instructions if keyword == "RUN")
    for tool in ("apt-get", "apk", "pip", "gcc", "build-essential", "curl", "wget"):
        assert not re.search(rf"\b{tool}\b", runs), f"{tool} in the final stage"
    # The user the chart runs as (runAsUser 10001) exists in the image.
    assert "--uid 10001" in runs


def _dockerignore_allows(path: PurePosixPath, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a directory match covers its contents."""
    allowed = True
    candidates = [str(path)] + [str(p) for p in path.parents if str(p) != "."]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(c, glob) for c in candidates):
            allowed = negate
    return allowed


def build_context(destination: Path) -> Path:
    """The files `docker build .` would send, per .dockerignore."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in REPO.rglob("*"):
        relative = PurePosixPath(source.relative_to(REPO).as_posix())
        if relative.parts[0] == ".git" or not source.is_file():
            continue
        if _dockerignore_allows(relative, patterns):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_build_context_is_small_and_complete(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert {INSTALL_SCRIPT, "requirements/runtime.lock", "pyproject.toml", "README.md"} <= files
    assert "operator/syncjob_operator/cli.py" in files
    assert not [f for f in files if f.startswith(("tests/", "charts/", ".git")) or ".pyc" in f]


def test_image_build_stage_installs_a_working_operator(
    tmp_path: Path, control_plane: ControlPlane, kubectl: Cli
) -> None:
    """Replays the build stage's COPY/WORKDIR/RUN against a temp root: /opt/venv and /src of
    the image become tmp dirs, and every RUN must be the shared install script. Then every verb
    the image's command offers is run from that venv: its help, and the operator itself against
    the real control plane until it reports ready."""
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    context = build_context(tmp_path / "context")
    root = tmp_path / "root"
    workdir = PurePosixPath("/")
    runs = 0
    for keyword, rest in stages[0].instructions:
        if keyword == "WORKDIR":
            workdir = workdir / rest
        elif keyword == "COPY":
            *sources, target = shlex.split(rest)
            assert not any(s.startswith("--") for s in sources), rest
            for source in sources:
                _copy(context / source, root, workdir, target, several=len(sources) > 1)
        elif keyword == "RUN":
            argv = shlex.split(rest)
            assert argv[:2] == ["sh", INSTALL_SCRIPT], f"unexpected RUN {rest}"
            local = [str(root / a.lstrip("/")) if a.startswith("/") else a for a in argv]
            env = _container_env()
            proc = subprocess.run(
                local,
                cwd=root / workdir.relative_to("/"),
                capture_output=True,
                text=True,
                timeout=600,
                env={**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
            )
            assert proc.returncode == 0, f"RUN {rest}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            runs += 1
        else:
            assert keyword == "ENV", f"{keyword} in the build stage: teach this test about it"
    assert runs == 2
    venv = root / "opt" / "venv"
    help_text = subprocess.run(
        [str(venv / "bin" / "syncjob-operator"), "run", "--help"],
        env=_container_env(),  # the installed package, not this checkout, must answer
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert help_text.returncode == 0, help_text.stderr
    for flag in ("--namespace", "--selector", "--peering", "--metrics-address", "--liveness"):
        assert flag in help_text.stdout
    # Exactly the lock's pins plus the package itself: nothing resolved on the side.
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        env=_container_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        _norm(f"{p['name']}=={p['version']}")
        for p in json.loads(listed)
        if p["name"] not in ("pip", "setuptools")
    }
    lock = [
        line.strip()
        for line in (REPO / "requirements" / "runtime.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert installed == {_norm(line) for line in lock} | {"syncjob-operator==0.1.0"}
    # The runtime carries the operator only: no server framework, no certificate library, no
    # local tooling (that is the syncjob-devtools distribution).
    assert not {n.split("==")[0] for n in installed} & {"starlette", "uvicorn", "cryptography"}
    probe = "import importlib.util as u; print(u.find_spec('syncjob_devtools') is None)"
    absent = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], env=_container_env(), capture_output=True
    )
    assert absent.stdout.strip() == b"True"
    _every_verb_works(venv, control_plane, kubectl, tmp_path)


def _every_verb_works(venv: Path, plane: ControlPlane, kubectl: Cli, tmp_path: Path) -> None:
    command = str(venv / "bin" / "syncjob-operator")
    top = subprocess.run(
        [command, "--help"], env=_container_env(), capture_output=True, text=True, timeout=60
    )
    assert top.returncode == 0, top.stderr
    verbs = re.search(r"\{([a-z,-]+)\}", top.stdout)
    assert verbs is not None, top.stdout
    assert verbs.group(1).split(",") == ["run"], "a new verb needs a smoke run here"
    kubectl.run("apply", "-f", str(REPO / "crds"))
    metrics, liveness = free_port(), free_port()
    log = tmp_path / "image-operator.log"
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [
                command,
                "run",
                f"--metrics-address=127.0.0.1:{metrics}",
                f"--liveness=http://127.0.0.1:{liveness}/healthz",
            ],
            env={**_container_env(), "KUBECONFIG": str(plane.kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: _ready(f"http://127.0.0.1:{metrics}/readyz"),
            timeout=60,
            what=f"the image's operator ready; log:\n{log.read_text(errors='replace')[-2000:]}",
        )
    finally:
        operator.terminate()
        code = operator.wait(timeout=30)
    assert code == 0, log.read_text(errors="replace")[-3000:]


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _norm(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def _copy(source: Path, root: Path, workdir: PurePosixPath, target: str, *, several: bool) -> None:
    base = PurePosixPath(target) if target.startswith("/") else workdir / target
    destination = root / base.relative_to("/")
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    elif target.endswith("/") or several:
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination / source.name)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
