"""A git repository on local disk for Argo CD's repo-server (`file://` URLs), and the objects
Argo CD writes that the GitOps tests read."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class GitRepo:
    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def init(self) -> GitRepo:
        self.path.mkdir(parents=True, exist_ok=True)
        self._git("init", "-q", "-b", "main")
        return self

    def write(self, relative: str, documents: list[dict[str, Any]] | str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        text = documents if isinstance(documents, str) else yaml.safe_dump_all(documents)
        target.write_text(text)

    def remove(self, relative: str) -> None:
        (self.path / relative).unlink()

    def commit(self, message: str) -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "-m", message)
        return self._git("rev-parse", "HEAD").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(
            [
                "git",
                "-c",
                "user.name=syncjob-tests",
                "-c",
                "user.email=tests@syncjob.dev",
                *args,
            ],
            cwd=self.path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def application(
    name: str,
    repo: GitRepo,
    namespace: str,
    *,
    path: str = ".",
    argocd_namespace: str = "argocd",
    **source: Any,
) -> dict[str, Any]:
    """An Application with automated sync and prune, as a team would declare it."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": argocd_namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url, "targetRevision": "main", "path": path, **source},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": True},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    }


def resource_status(app: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """The Application's record of one of its resources (sync status, health)."""
    for resource in app.get("status", {}).get("resources", []):
        if resource["kind"] == kind and resource["name"] == name:
            found: dict[str, Any] = resource
            return found
    raise AssertionError(f"{kind}/{name} is not among the Application's resources")
