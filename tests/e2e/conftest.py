"""End-to-end fixtures: the CRD installed in the real control plane, both emulators, and the
operator as its own process reaching them through the real boto3 and httpx clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mypy_boto3_iottwinmaker import IoTTwinMakerClient

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.sigv4 import DEFAULT_AWS_CREDENTIALS
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import CRDS_DIR, OperatorProcess, aws_key_pair
from tests.support.kube import Cli, condition, wait_until

TRUTO_TOKEN = "e2e-token"
ROLE = "arn:aws:iam::123456789012:role/TwinMakerSync"
# A role in another account whose trust policy demands an external id (tests/e2e/...account).
PARTNER_ROLE = "arn:aws:iam::210987654321:role/PartnerTwinMaker"
PARTNER_EXTERNAL_ID = "partner-7f3a"
OPERATOR_ACCESS_KEY, _OPERATOR_SECRET = aws_key_pair()


@dataclass(frozen=True)
class Emulators:
    running: RunningEmulators
    twinmaker_admin: EmulatorAdmin
    truto_admin: EmulatorAdmin
    twinmaker: IoTTwinMakerClient
    truto: httpx.Client

    def new_workspace(self) -> str:
        workspace = f"ws-{uuid.uuid4().hex[:10]}"
        self.twinmaker.create_workspace(workspaceId=workspace)
        return workspace

    def truto_jobs(self, integration: str) -> list[dict[str, Any]]:
        page = self.truto.get("/sync-job", params={"integration_name": integration, "limit": 100})
        page.raise_for_status()
        jobs: list[dict[str, Any]] = page.json()["result"]
        return jobs


@pytest.fixture(scope="session")
def crd(kubectl: Cli) -> None:
    kubectl.run("apply", "-f", str(CRDS_DIR))
    kubectl.run("wait", "--for=condition=Established", "crd/syncjobs.syncjob.dev")


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    from syncjob_devtools.emulators.truto import TrutoConfig

    with RunningEmulators(
        TwinMakerConfig(
            transition_seconds=0.3,
            role_external_ids={PARTNER_ROLE: PARTNER_EXTERNAL_ID},
            # The operator's own key, should the environment name one.
            aws_credentials={**DEFAULT_AWS_CREDENTIALS, OPERATOR_ACCESS_KEY: _OPERATOR_SECRET},
        ),
        TrutoConfig(tokens=frozenset({TRUTO_TOKEN})),
    ) as running:
        twinmaker = twinmaker_client(running.twinmaker_url)
        with (
            EmulatorAdmin(running.twinmaker_url) as twinmaker_admin,
            EmulatorAdmin(running.truto_url) as truto_admin,
            httpx.Client(
                base_url=running.truto_url, headers={"Authorization": f"Bearer {TRUTO_TOKEN}"}
            ) as truto,
        ):
            yield Emulators(running, twinmaker_admin, truto_admin, twinmaker, truto)


def start_operator(
    control_plane: ControlPlane,
    emulators: Emulators | RunningEmulators,
    log_dir: Path,
    **kwargs: Any,
) -> OperatorProcess:
    """The operator against these emulators (the suite's, or a test's own), logging to
    ``log_dir/operator.log``; ready when this returns."""
    running = emulators.running if isinstance(emulators, Emulators) else emulators
    process = OperatorProcess(
        kubeconfig=control_plane.kubeconfig,
        log_path=log_dir / "operator.log",
        twinmaker_url=running.twinmaker_url,
        truto_url=running.truto_url,
        **kwargs,
    )
    process.start()
    return process


def start_quick_operator(
    control_plane: ControlPlane, emulators: Emulators, log_dir: Path, *extra_args: str
) -> OperatorProcess:
    """An operator with compressed timers: a drift pass every 2 s, settling polled every 0.3 s."""
    return start_operator(
        control_plane,
        emulators,
        log_dir,
        resync_seconds=2.0,
        poll_seconds=0.3,
        extra_args=list(extra_args),
    )


def module_operator(*, autouse: bool = False, own_defaults: bool = False, **options: Any) -> Any:
    """A module-scoped `operator` fixture: one operator, started with `options`
    (OperatorProcess's), for every test of the module that defines it. `own_defaults`: no
    setting from the environment either (SYNCJOB_* variables would set some)."""

    @pytest.fixture(scope="module", autouse=autouse, name="operator")
    def fixture(
        crd: None,
        control_plane: ControlPlane,
        emulators: Emulators,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[OperatorProcess]:
        with pytest.MonkeyPatch.context() as env:
            for variable in [v for v in os.environ if own_defaults and v.startswith("SYNCJOB_")]:
                env.delenv(variable)
            process = start_operator(
                control_plane, emulators, tmp_path_factory.mktemp("operator"), **options
            )
        yield process
        process.stop()

    return fixture


# The suite's operator; drift tests rely on its short resync interval.
operator = module_operator(
    resync_seconds=2.0, poll_seconds=0.3, extra_args=["--sync-progress-seconds=2"]
)


def twinmaker_job(name: str, workspace: str, **fields: Any) -> str:
    spec: dict[str, Any] = {
        "awsIoTTwinMaker": {
            "region": "us-east-1",
            "workspaceId": workspace,
            "syncSource": "SITEWISE",
            "syncRole": ROLE,
            **fields.pop("provider", {}),
        },
        **fields,
    }
    return yaml.safe_dump(
        {
            "apiVersion": "syncjob.dev/v1alpha1",
            "kind": "SyncJob",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def truto_job(name: str, integration: str, *, secret: str = "truto-token", **fields: Any) -> str:
    spec: dict[str, Any] = {
        "truto": {
            "integrationName": integration,
            "tokenSecretRef": {"name": secret, "key": "token"},
            "argsSchema": {"type": "object", "properties": {"since": {"type": "string"}}},
            "resources": [{"resource": "crm/contacts", "method": "list"}],
            **fields.pop("provider", {}),
        },
        **fields,
    }
    return yaml.safe_dump(
        {
            "apiVersion": "syncjob.dev/v1alpha1",
            "kind": "SyncJob",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def token_secret(token: str = TRUTO_TOKEN, name: str = "truto-token") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"token": token},
        }
    )


def get_syncjob(kubectl: Cli, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl.json("get", "syncjob", name, "-n", namespace)
    return obj


def wait_ready(kubectl: Cli, namespace: str, name: str) -> dict[str, Any]:
    kubectl.run(
        "wait", "--for=condition=Ready", f"syncjob/{name}", "-n", namespace, "--timeout=60s"
    )
    return get_syncjob(kubectl, namespace, name)


def wait_condition(
    kubectl: Cli, namespace: str, name: str, kind: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        obj = get_syncjob(kubectl, namespace, name)
        found = condition(obj, kind)
        if found and found["status"] == status and reason in (None, found["reason"]):
            return obj
        return None

    result: dict[str, Any] = wait_until(matches, timeout=60, what=f"{kind}={status} {reason or ''}")
    return result


def event_reasons(kubectl: Cli, namespace: str, name: str) -> set[str]:
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )
    return {e["reason"] for e in events["items"]}


def has_event(kubectl: Cli, namespace: str, name: str, reason: str) -> bool:
    """kopf posts Events from a background task: wait for the one expected."""
    return bool(
        wait_until(
            lambda: reason in event_reasons(kubectl, namespace, name),
            timeout=20,
            what=f"Event {reason}",
        )
    )
