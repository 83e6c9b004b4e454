"""The Dockerfile: hadolint, its shape and its build context; and the image built from it by
hack/build-image.sh (no Docker engine: buildah), inspected from its archive (config, the
filesystem its layers add up to) and run once."""

from __future__ import annotations

import fnmatch
import re
import shutil
import stat
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.chart.support import CHART, REPO
from tests.support.image import BuiltImage, ImageContents, read_archive, run_in_image

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INSTALL_SCRIPT = "hack/install-package.sh"


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


# The first test to ask for the image may build it: a cold build takes about two minutes.
MAY_BUILD = pytest.mark.timeout(1200)
SITE_PACKAGES = re.compile(r"opt/venv/lib/python3\.\d+/site-packages")
# usr/bin/gcc, usr/bin/cc, x86_64-linux-gnu-gcc-12, g++, clang-16, ...
COMPILER = re.compile(r"usr/(local/)?bin/([\w.-]+-)?(cc|c\+\+|gcc|g\+\+|clang)(-[\d.]+)?")


@pytest.fixture(scope="module")
def contents(built_image: BuiltImage) -> ImageContents:
    return read_archive(built_image.archive, texts=("etc/passwd", "etc/group"))


@MAY_BUILD
def test_image_config(built_image: BuiltImage, contents: ImageContents) -> None:
    # The name the kubelet asks for when the chart's image.repository is the short default.
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert re.fullmatch(
        rf"docker\.io/library/syncjob-operator:{re.escape(app_version)}-[0-9a-f]{{12}}",
        built_image.reference,
    ), built_image.reference
    assert contents.repo_tags == [built_image.reference]
    config = contents.config
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["syncjob-operator"]
    assert config["Cmd"] == ["run"]
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}
    env = dict(entry.split("=", 1) for entry in config["Env"])
    path = env["PATH"].split(":")
    assert path[0] == "/opt/venv/bin", env["PATH"]
    assert "/usr/bin" in path, env["PATH"]
    # Nothing of the build machine's pip or TLS settings.
    assert not [k for k in env if k.startswith(("PIP_", "REQUESTS_", "SSL_", "CURL_"))], env


@MAY_BUILD
def test_image_filesystem(contents: ImageContents) -> None:
    files = contents.files
    command = files.get("opt/venv/bin/syncjob-operator")
    assert command is not None
    assert command.isfile()
    assert command.mode & stat.S_IXOTH
    # Exactly the lock's pins plus the package itself: nothing resolved on the side.
    (site,) = {p for p in files if SITE_PACKAGES.fullmatch(p)}
    dist_info = re.compile(rf"{re.escape(site)}/([^/]+)-([^/-]+)\.dist-info/METADATA")
    installed = {
        _norm(f"{m.group(1)}=={m.group(2)}") for p in files if (m := dist_info.fullmatch(p))
    }
    installed = {r for r in installed if r.split("==")[0] not in ("pip", "setuptools")}
    lock = [
        line.strip()
        for line in (REPO / "requirements" / "runtime.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert installed == {_norm(line) for line in lock} | {f"syncjob-operator=={version}"}
    # The runtime carries the operator only: no server framework, no certificate library, no
    # local tooling (that is the syncjob-devtools distribution), and no build leftovers.
    for absent in ("starlette", "uvicorn", "cryptography"):
        assert not [p for p in files if p.startswith(f"{site}/{absent}")], absent
    assert not [p for p in files if "syncjob_devtools" in p or "syncjob-devtools" in p]
    assert not [p for p in files if COMPILER.fullmatch(p)]
    assert not [p for p in files if p == "src" or p.startswith("src/")]
    assert "etc/pip.conf" not in files
    # The user the chart runs as (runAsUser 10001) has a name: getpass and friends look it up.
    users = [line.split(":") for line in contents.texts["etc/passwd"].splitlines()]
    assert [(u[0], u[3]) for u in users if u[2] == "10001"] == [("syncjob", "10001")]
    groups = [line.split(":") for line in contents.texts["etc/group"].splitlines()]
    assert [g[0] for g in groups if g[2] == "10001"] == ["syncjob"]


@MAY_BUILD
def test_image_entrypoint_runs(built_image: BuiltImage, contents: ImageContents) -> None:
    """The image's own command, in a container of it: as its user, with its PATH."""
    proc = run_in_image(built_image, [*contents.config["Entrypoint"], "run", "--help"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for flag in ("--namespace", "--selector", "--peering", "--metrics-address", "--liveness"):
        assert flag in proc.stdout, proc.stdout


def _norm(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"
