"""The chart's values for an operator Pod on the local node: the built image (already in the
node's runtime, so never pulled) and both providers' endpoints on the Pod bridge's gateway,
through the chart's provider-defaults Secret."""

from __future__ import annotations

from typing import Any

# The chart's default image.repository, as the kubelet normalises it.
IMAGE_REPOSITORY = "docker.io/library/syncjob-operator"


def node_chart_values(
    image_reference: str, *, twinmaker_url: str, truto_url: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    repository, tag = image_reference.rsplit(":", 1)
    if repository != IMAGE_REPOSITORY:
        raise ValueError(f"{image_reference}: the chart's image is {IMAGE_REPOSITORY}:TAG")
    return {
        "image": {"tag": tag, "pullPolicy": "Never"},
        "providerDefaults": {
            "env": {
                "AWS_REGION": "us-east-1",
                "SYNCJOB_TWINMAKER_ENDPOINT_URL": twinmaker_url,
                "SYNCJOB_TRUTO_BASE_URL": truto_url,
                **(env or {}),
            }
        },
    }
