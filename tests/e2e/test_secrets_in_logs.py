"""Secret values never reach the operator's log, Events, status, metrics or `kubectl describe`,
in any form (plain, base64, URL- or JSON-encoded), at the most verbose level, on the error paths
(a bad token, a missing key) as on the happy path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml

from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import OperatorProcess
from tests.e2e.conftest import (
    TRUTO_TOKEN,
    Emulators,
    start_operator,
    token_secret,
    truto_job,
    twinmaker_job,
    wait_condition,
    wait_ready,
)
from tests.support.kube import Cli
from tests.support.secrets import leaks


@pytest.fixture(scope="module")
def verbose_operator(
    crd: None,
    control_plane: ControlPlane,
    emulators: Emulators,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    process = start_operator(
        control_plane,
        emulators,
        tmp_path_factory.mktemp("verbose-operator"),
        resync_seconds=2.0,
        poll_seconds=0.3,
        extra_args=["--verbose"],
    )
    yield process
    process.stop()


def _aws_keys(name: str, *, access_key: str, secret_key: str | None) -> str:
    data = {"AWS_ACCESS_KEY_ID": access_key}
    if secret_key is not None:
        data["AWS_SECRET_ACCESS_KEY"] = secret_key
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
    return yaml.safe_dump(secret)


def test_no_secret_value_reaches_logs_events_or_status_at_debug_level(
    kubectl: Cli, namespace: str, emulators: Emulators, verbose_operator: OperatorProcess
) -> None:
    # Characters every encoding changes ("/", "+", space, quotes, "&", non-ASCII), so each form
    # of a value differs from the others.
    bad_token = f'bad/token+{uuid.uuid4().hex} "x"&y=z'
    keys = {
        "good": (f"AKIAGOOD{uuid.uuid4().hex[:12]}", f"good/secret+{uuid.uuid4().hex} &é="),
        "half": (f"AKIAHALF{uuid.uuid4().hex[:12]}", None),  # the secret access key is missing
    }
    # kubectl apply: the last-applied annotation carries stringData in clear as well.
    kubectl.apply(token_secret(bad_token, name="bad-token"), "-n", namespace)
    kubectl.apply(token_secret(), "-n", namespace)
    good_access, good_secret = keys["good"]
    assert good_secret is not None
    emulators.twinmaker_admin.add_credentials(good_access, good_secret)  # it verifies SigV4
    for name, (access, secret) in keys.items():
        kubectl.apply(_aws_keys(name, access_key=access, secret_key=secret), "-n", namespace)
    integration = f"crm-{namespace}"
    kubectl.apply(truto_job("denied", integration, secret="bad-token"), "-n", namespace)
    kubectl.apply(truto_job("fine", integration), "-n", namespace)
    for name in keys:
        workspace = emulators.new_workspace()
        ref = {"credentialsSecretRef": {"name": name}}
        kubectl.apply(twinmaker_job(f"twin-{name}", workspace, provider=ref), "-n", namespace)

    wait_condition(kubectl, namespace, "denied", "Terminal", "True", "Unauthorized")
    wait_condition(kubectl, namespace, "twin-half", "Terminal", "True", "SecretKeyNotFound")
    wait_ready(kubectl, namespace, "fine")
    wait_ready(kubectl, namespace, "twin-good")

    secrets = {
        "the bad token": bad_token,
        "the Truto token": TRUTO_TOKEN,
        **{f"the {name} key's {part}": value
           for name, pair in keys.items()
           for part, value in zip(("access key id", "secret"), pair, strict=True)
           if value},
    }  # fmt: skip
    log = verbose_operator.log_path.read_text(errors="replace")
    assert "DEBUG" in log  # really the most verbose level
    places = {
        "operator log": log,
        "Events": kubectl.run("get", "events", "-n", namespace, "-o", "json").stdout,
        "SyncJobs": kubectl.run("get", "syncjobs", "-n", namespace, "-o", "json").stdout,
        "metrics": verbose_operator.metrics(),
        "kubectl describe": kubectl.run("describe", "syncjobs", "-n", namespace).stdout,
    }
    assert "twin-good" in places["kubectl describe"]  # really described
    assert leaks(secrets, places) == []
