"""The operator reaches into kopf's private API in a few places; those are verified against the
kopf releases pyproject.toml allows, and an installed kopf outside them must fail loudly."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _kopf_requirement() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (kopf,) = [r for r in map(Requirement, dependencies) if r.name == "kopf"]
    return kopf


def test_the_installed_kopf_is_one_the_private_api_was_verified_against() -> None:
    allowed = _kopf_requirement().specifier
    installed = version("kopf")
    assert allowed.contains(installed), (
        f"kopf {installed} is installed, but the operator's use of kopf's private API is"
        f" verified only for kopf{allowed} (pyproject.toml): verify kopf_edge/ (slimwatch,"
        " the namespace matching, the progress annotation) against it, then widen the range"
    )


def test_the_range_admits_no_other_minor_release() -> None:
    # A new minor release may move the private modules: it must be verified, not admitted.
    allowed = _kopf_requirement().specifier
    assert allowed.contains("1.45.2")
    assert not allowed.contains("1.46.0")
    assert not allowed.contains("1.44.9")
