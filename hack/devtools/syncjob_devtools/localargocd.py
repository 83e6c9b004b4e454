"""Argo CD run as Argo CD runs itself locally (its Procfile): argocd-repo-server and
argocd-application-controller as local processes against a local control plane, with Redis on
loopback. The binaries and Argo CD's CRDs and base config come from hack/build-argocd.sh
(on PATH after hack/bootstrap.sh). No API server, UI, Dex or ApplicationSet controller: the
application controller alone syncs, diffs, prunes and computes health.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localcluster.processes import Process, free_port, spawn, stop_all

REQUIRED_BINARIES = (
    "argocd",
    "argocd-repo-server",
    "argocd-application-controller",
    "redis-server",
)
ARGOCD_CRDS = ("application-crd.yaml", "applicationset-crd.yaml", "appproject-crd.yaml")


class ArgoCDError(RuntimeError):
    """Argo CD could not start; the message says which part and why."""


def manifests_dir() -> Path:
    """Argo CD's CRDs and base config, cached beside the binary by hack/build-argocd.sh."""
    binary = shutil.which("argocd")
    if binary is None:
        raise ArgoCDError('argocd is not on PATH; run: eval "$(hack/bootstrap.sh)"')
    return Path(binary).resolve().parent / "manifests"


@dataclass
class LocalArgoCD:
    """Start with `start()` (or as a context manager) once the control plane runs."""

    plane: ControlPlane
    workdir: Path
    namespace: str = "argocd"
    # How often Argo CD looks at git again without a webhook: `timeout.reconciliation` in
    # argocd-cm (default 120 s), which reaches the controller (app resync) and the repo-server
    # (how long a branch's resolved commit is cached) as ARGOCD_RECONCILIATION_TIMEOUT.
    reconciliation_seconds: int = 5
    _processes: list[Process] = field(default_factory=list, init=False)

    def __enter__(self) -> LocalArgoCD:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
        if missing:
            raise ArgoCDError(
                f'missing on PATH: {", ".join(missing)}; run: eval "$(hack/bootstrap.sh)"'
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._install()
            self._start_processes()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_all(self._processes)
        self._processes.clear()

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            env=self.plane.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            raise ArgoCDError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def _install(self) -> None:
        """Argo CD's CRDs, its base ConfigMaps and Secret, and the `default` AppProject."""
        source = manifests_dir()
        for crd in ARGOCD_CRDS:
            # Server-side: the Application CRD is too large for the last-applied annotation.
            self.kubectl("apply", "--server-side", "-f", str(source / crd))
        self.kubectl("wait", "--for=condition=Established", "crd/applications.argoproj.io")
        self.kubectl("create", "namespace", self.namespace)
        for config in sorted(source.glob("argocd-*.yaml")):
            self.kubectl("apply", "-n", self.namespace, "-f", str(config))
        self.kubectl("apply", "-n", self.namespace, "-f", "-", stdin=yaml.safe_dump(_project()))

    def _start_processes(self) -> None:
        redis_port, repo_port = free_port(), free_port()
        password = secrets.token_hex(16)
        env = {
            **self.plane.env(),
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "REDIS_PASSWORD": password,
            "ARGOCD_TLS_DATA_PATH": str(self._dir("tls")),
            "ARGOCD_SSH_DATA_PATH": str(self._dir("ssh")),
            "ARGOCD_GNUPGHOME": str(self._dir("gpg")),
            # The repo-server's scratch space for clones and rendered manifests.
            "TMPDIR": str(self._dir("tmp")),
            # The controller takes its shard from the StatefulSet ordinal in its host name.
            "HOSTNAME": "argocd-application-controller-0",
            "ARGOCD_RECONCILIATION_TIMEOUT": f"{self.reconciliation_seconds}s",
            "ARGOCD_RECONCILIATION_JITTER": "0s",
        }
        redis = f"127.0.0.1:{redis_port}"
        self._spawn(
            "redis",
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(redis_port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--requirepass",
                password,
            ],
            env,
        )
        self._wait_for_port("redis", redis_port)
        self._spawn(
            "argocd-repo-server",
            [
                "argocd-repo-server",
                "--address=127.0.0.1",
                f"--port={repo_port}",
                f"--metrics-port={free_port()}",
                f"--redis={redis}",
                "--loglevel=info",
            ],
            env,
        )
        self._wait_for_port("argocd-repo-server", repo_port)
        self._spawn(
            "argocd-application-controller",
            [
                "argocd-application-controller",
                f"--namespace={self.namespace}",
                f"--redis={redis}",
                f"--repo-server=127.0.0.1:{repo_port}",
                f"--metrics-port={free_port()}",
                # Each resource's health in the Application's status, where kubectl reads it
                # (Argo CD 3 keeps it in Redis for its API server otherwise).
                "--persist-resource-health=true",
                "--loglevel=info",
            ],
            env,
        )

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self._processes.append(spawn(name, argv, self.workdir, env=env))

    def _wait_for_port(self, name: str, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._processes:
                if proc.popen.poll() is not None:
                    raise ArgoCDError(
                        f"{proc.name} exited with code {proc.popen.returncode};"
                        f" last log lines ({proc.log}):\n{proc.tail()}"
                    )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise ArgoCDError(f"{name} did not listen on port {port} within {timeout}s")

    def log_tails(self, lines: int = 20) -> str:
        return "\n".join(f"--- {p.name} ({p.log}):\n{p.tail(lines)}" for p in self._processes)


def _project() -> dict[str, Any]:
    """The `default` AppProject Argo CD's own install creates: any source, any destination."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default"},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"namespace": "*", "server": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }


def evaluate_health(obj: dict[str, Any], argocd_cm: Path, workdir: Path) -> dict[str, str]:
    """Argo CD's own health verdict on `obj` with the health checks in the `argocd_cm` file:
    `argocd admin settings resource-overrides health`, the command docs/argocd.md names."""
    resource = workdir / "resource.yaml"
    resource.write_text(yaml.safe_dump(obj))
    proc = subprocess.run(
        [
            "argocd",
            "admin",
            "settings",
            "resource-overrides",
            "health",
            str(resource),
            f"--argocd-cm-path={argocd_cm}",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": os.devnull},
        timeout=60,
    )
    if proc.returncode != 0:
        raise ArgoCDError(f"argocd admin settings resource-overrides health: {proc.stderr}")
    return parse_health(proc.stdout)


def parse_health(output: str) -> dict[str, str]:
    """`STATUS: Healthy` / `MESSAGE: ...` lines, as the command prints them."""
    fields: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("STATUS", "MESSAGE"):
            fields[key.strip().lower()] = value.strip()
    if "status" not in fields:
        raise ArgoCDError(f"no health in argocd's output: {output!r}")
    return fields
