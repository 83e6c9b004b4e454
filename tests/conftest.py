"""Session fixtures: one real control plane for the run, a fresh namespace per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from syncjob_devtools.localcluster import ControlPlane, ControlPlaneError
from tests.support.image import BuiltImage, ImageError, build_image
from tests.support.kube import Cli


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane()
    try:
        plane.start()
    except ControlPlaneError as exc:
        # Never skip: a suite that cannot reach a real API server has not tested anything.
        pytest.fail(f"the local control plane did not start: {exc}", pytrace=False)
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def built_image() -> BuiltImage:
    """The image from the repository's Dockerfile (hack/build-image.sh), once per session."""
    try:
        return build_image()
    except ImageError as exc:
        # Never skip: an image that cannot be built has not been tested.
        pytest.fail(f"the image did not build: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Cli:
    return Cli("kubectl", control_plane.env())


@pytest.fixture(scope="session")
def helm(control_plane: ControlPlane) -> Cli:
    return Cli("helm", control_plane.env())


@pytest.fixture
def namespace(kubectl: Cli, request: pytest.FixtureRequest) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)
