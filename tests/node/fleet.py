"""Many SyncJobs at once for the node tier, and the remote side's verdict on them: every
SyncJob Ready with its own remote job, no remote job without its SyncJob. Truto SyncJobs of
an integration share one spec, so nothing but their Kubernetes identity tells them apart."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from syncjob_devtools.emulators.admin import twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from tests.support.chaos import (
    ROLE,
    SYNC_SOURCE,
    TRUTO_ARGS_SCHEMA,
    TRUTO_RESOURCES,
    _truto_jobs,
    _twinmaker_jobs,
)
from tests.support.kube import Cli, condition, wait_until

TRUTO_TOKEN = "demo-token"  # one the Truto emulator accepts by default


@dataclass
class Fleet:
    """`truto` + `twinmaker` SyncJobs in `namespace`, in scopes named after `name`."""

    kubectl: Cli
    emulators: RunningEmulators
    namespace: str
    name: str
    truto: int = 50
    twinmaker: int = 50
    integrations: int = 2
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> tuple[list[str], list[str]]:
        integrations = [f"{self.name}-int-{i}" for i in range(self.integrations)]
        workspaces = [f"{self.name}-ws-{i:03d}" for i in range(self.twinmaker)]
        return integrations, workspaces

    def apply(self) -> None:
        integrations, workspaces = self.scopes
        client = twinmaker_client(self.emulators.twinmaker_url)
        for workspace in workspaces:
            client.create_workspace(workspaceId=workspace)
        docs: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{self.name}-token"},
                "stringData": {"token": TRUTO_TOKEN},
            }
        ]
        for i in range(self.truto):
            docs.append(
                self._syncjob(
                    f"{self.name}-truto-{i:03d}",
                    {
                        "truto": {
                            "integrationName": integrations[i % len(integrations)],
                            "tokenSecretRef": {"name": f"{self.name}-token", "key": "token"},
                            "argsSchema": TRUTO_ARGS_SCHEMA,
                            "resources": TRUTO_RESOURCES,
                        }
                    },
                )
            )
        for i, workspace in enumerate(workspaces):
            docs.append(
                self._syncjob(
                    f"{self.name}-twin-{i:03d}",
                    {
                        "awsIoTTwinMaker": {
                            "region": "us-east-1",
                            "workspaceId": workspace,
                            "syncSource": SYNC_SOURCE,
                            "syncRole": ROLE,
                        }
                    },
                )
            )
        self.kubectl.apply(yaml.safe_dump_all(docs), "-n", self.namespace, "--server-side")

    def _syncjob(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "syncjob.dev/v1alpha1",
            "kind": "SyncJob",
            "metadata": {"name": name, "labels": self.labels},
            "spec": spec,
        }

    def syncjobs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kubectl.json("get", "syncjobs", "-n", self.namespace)[
            "items"
        ]
        return [i for i in items if i["metadata"]["name"].startswith(f"{self.name}-")]

    def ready(self) -> int:
        return sum(
            1
            for item in self.syncjobs()
            if (c := condition(item, "Ready")) is not None and c["status"] == "True"
        )

    def wait_ready(self, timeout: float = 300) -> None:
        total = self.truto + self.twinmaker
        try:
            wait_until(
                lambda: self.ready() == total,
                timeout=timeout,
                interval=1,
                what=f"{total} SyncJobs of {self.name} Ready",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; not Ready: {self.not_ready()[:5]}") from None

    def not_ready(self) -> list[str]:
        """Each SyncJob that is not Ready, with what its conditions say."""
        found = []
        for item in self.syncjobs():
            ready = condition(item, "Ready")
            if ready is None or ready["status"] != "True":
                synced = condition(item, "Synced") or {}
                annotations = item["metadata"].get("annotations", {})
                found.append(
                    f"{item['metadata']['name']}: Ready {ready and ready.get('message')!r},"
                    f" Synced {synced.get('message')!r},"
                    f" annotations {sorted(k for k in annotations if 'syncjob' in k)}"
                )
        return found

    def remote_ids(self) -> list[str]:
        """The remote jobs in this fleet's scopes, as the providers list them."""
        integrations, workspaces = self.scopes
        remote: list[str] = []
        with httpx.Client(
            base_url=self.emulators.truto_url,
            headers={"Authorization": f"Bearer {TRUTO_TOKEN}"},
            timeout=30,
        ) as truto:
            for integration in integrations:
                remote += [str(job["id"]) for job in _truto_jobs(truto, integration)]
        client = twinmaker_client(self.emulators.twinmaker_url)
        for workspace in workspaces:
            remote += [str(s["arn"]) for s in _twinmaker_jobs(client, workspace)]
        return remote

    def ownership_problems(self) -> list[str]:
        """Empty when every SyncJob holds its own remote job and every remote job in this
        fleet's scopes belongs to a SyncJob."""
        ids = [(i.get("status") or {}).get("remote", {}).get("id") for i in self.syncjobs()]
        problems = [f"{ids.count(None)} SyncJobs without a remote id"] if None in ids else []
        shared = {i: n for i, n in Counter(ids).items() if i is not None and n > 1}
        if shared:
            problems.append(f"remote ids held by several SyncJobs: {shared}")
        remote = self.remote_ids()
        if len(remote) != len(set(remote)) or len(remote) != self.truto + self.twinmaker:
            problems.append(f"{len(remote)} remote jobs for {self.truto + self.twinmaker}")
        if missing := set(ids) - set(remote) - {None}:
            problems.append(f"status ids missing remotely: {sorted(missing)[:10]}")
        if stray := set(remote) - set(ids):
            problems.append(f"remote jobs no SyncJob holds: {sorted(stray)[:10]}")
        return problems
