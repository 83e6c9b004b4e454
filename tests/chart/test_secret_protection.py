"""The chart's Secret-protection admission policy against the real API server: acting as the
installed operator's ServiceAccount (kubectl --as), a Secret can get and lose the finalizer and
label syncjob.dev/secret-in-use, and nothing else about it can change; other users are not
affected; and the refusals come from the policy, not from RBAC (they stop when it is disabled).

The tests of this module share one release (fixture `release`) and run in file order: the last
one upgrades it with the policy disabled.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from syncjob_operator.kube import secret_hold
from tests.chart.support import CHART, SECRET_FINALIZER, secret_policy_name
from tests.support.kube import Cli, wait_until

pytestmark = pytest.mark.cluster

# A new or deleted policy or binding is enforced once the API server's policy informer has
# seen it, a moment after Helm returns: polled for, with this bound.
ENFORCEMENT_TIMEOUT = 60
ORIGINAL_TOKEN = "original-token"
PROTECT = {"metadata": {"finalizers": [SECRET_FINALIZER], "labels": {SECRET_FINALIZER: "true"}}}
RELEASE_PROTECTION = {"metadata": {"finalizers": None, "labels": {SECRET_FINALIZER: None}}}
SHARD_HOLD = secret_hold({"syncjob.dev/shard": "b"})  # a sharded release's own hold


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    apps: str  # where the test's Secrets live
    operator: str  # the ServiceAccount's user name
    policy: str  # the policy's (and binding's) name


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _patch(
    kubectl: Cli, release: Release, secret: str, patch: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    """A JSON merge patch of `secret`, as the admin unless args say --as=..."""
    return kubectl.run(
        "patch", "secret", secret, "-n", release.apps, "--type", "merge",
        "-p", json.dumps(patch), *args, check=False,
    )  # fmt: skip


def _as_operator(
    kubectl: Cli, release: Release, secret: str, patch: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    return _patch(kubectl, release, secret, patch, f"--as={release.operator}", *args)


def _state(kubectl: Cli, release: Release, secret: str) -> dict[str, Any]:
    """Everything the policy guards, as stored."""
    found = kubectl.json("get", "secret", secret, "-n", release.apps)
    meta = found["metadata"]
    return {
        "data": found.get("data"),
        "type": found.get("type"),
        "immutable": found.get("immutable"),
        **{k: meta.get(k) for k in ("labels", "annotations", "finalizers", "ownerReferences")},
    }


def _wait_enforced(kubectl: Cli, release: Release, *, enforced: bool) -> None:
    """Polls, with a server-side dry run (nothing is written), until a data change by the
    operator is refused by the policy (enforced) or accepted (not enforced)."""

    def settled() -> bool:
        probe = {"stringData": {"token": "probe"}}
        proc = _as_operator(kubectl, release, "creds", probe, "--dry-run=server")
        if proc.returncode != 0 and release.policy not in proc.stderr:
            raise AssertionError(f"refused, but not by the policy: {proc.stderr}")
        return (proc.returncode != 0) == enforced

    wait_until(
        settled,
        timeout=ENFORCEMENT_TIMEOUT,
        interval=0.5,
        what=f"policy {release.policy} {'enforced' if enforced else 'lifted'}",
    )


@pytest.fixture(scope="module")
def release(kubectl: Cli, helm: Cli) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    namespace, apps, name = f"syncjob-sp-{suffix}", f"secrets-{suffix}", f"sp-{suffix}"
    fullname = f"{name}-syncjob-operator"
    release = Release(
        name,
        namespace,
        apps,
        f"system:serviceaccount:{namespace}:{fullname}",
        secret_policy_name(fullname, namespace),
    )
    for ns in (namespace, apps):
        kubectl.run("create", "namespace", ns)
    try:
        helm.run("install", name, str(CHART), "--namespace", namespace)  # the defaults: on
        # creds: data, another label, an annotation. bare: nothing at all (absent fields).
        kubectl.run(
            "create", "secret", "generic", "creds", "-n", apps,
            f"--from-literal=token={ORIGINAL_TOKEN}",
        )  # fmt: skip
        kubectl.run("label", "secret", "creds", "-n", apps, "app=crm")
        kubectl.run("annotate", "secret", "creds", "-n", apps, "example.com/owner=team-a")
        kubectl.run("create", "secret", "generic", "bare", "-n", apps)
        yield release
    finally:
        # The finalizer would keep the namespace from going; the admin can always remove it.
        for secret in ("creds", "bare"):
            _patch(kubectl, release, secret, {"metadata": {"finalizers": None}})
        helm.run("uninstall", name, "-n", namespace, check=False)
        for ns in (namespace, apps):
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def test_the_policy_type_checks_against_the_secret_schema(kubectl: Cli, release: Release) -> None:
    def checked() -> dict[str, Any] | None:
        policy = kubectl.json("get", "validatingadmissionpolicy", release.policy)
        status: dict[str, Any] = policy.get("status", {})
        done = status.get("observedGeneration") == policy["metadata"]["generation"]
        return status if done and "typeChecking" in status else None

    status = wait_until(checked, timeout=ENFORCEMENT_TIMEOUT, what="the policy type-checked")
    # Misspelt fields or wrong types in the CEL would show as warnings here.
    assert not status["typeChecking"].get("expressionWarnings"), status


def test_operator_may_only_add_and_remove_the_finalizer_and_label(
    kubectl: Cli, release: Release
) -> None:
    _wait_enforced(kubectl, release, enforced=True)
    data = "changing data or stringData is forbidden"
    labels = "changing other labels, or setting that label"
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": str(uuid.uuid4())}
    refused: list[tuple[str, dict[str, Any], str]] = [
        ("creds", {"stringData": {"token": "stolen"}}, data),
        ("creds", {"data": {"token": _b64("stolen")}}, data),
        ("creds", {"data": {"another": _b64("x")}}, data),
        ("creds", {"data": None}, data),
        ("bare", {"data": {"token": _b64("x")}}, data),  # absent -> present
        ("bare", {"stringData": {"token": "x"}}, data),
        ("creds", {**PROTECT, "stringData": {"token": "stolen"}}, data),  # smuggled along
        ("creds", {"metadata": {"labels": {"extra": "x"}}}, labels),
        ("creds", {"metadata": {"labels": {"app": "billing"}}}, labels),
        ("creds", {"metadata": {"labels": {"app": None}}}, labels),
        ("creds", {"metadata": {"labels": {SECRET_FINALIZER: "false"}}}, labels),
        ("creds", {"metadata": {"labels": {SHARD_HOLD: "false"}}}, labels),
        ("bare", {"metadata": {"labels": {"extra": "x"}}}, labels),  # no labels before
        ("creds", {"metadata": {"annotations": {"example.com/owner": "team-b"}}}, "annotations"),
        ("creds", {"metadata": {"annotations": {"example.com/owner": None}}}, "annotations"),
        ("bare", {"metadata": {"annotations": {"example.com/new": "x"}}}, "annotations"),
        ("creds", {"immutable": True}, "changing immutable is forbidden"),
        ("bare", {"immutable": False}, "changing immutable is forbidden"),  # absent -> false
        ("creds", {"metadata": {"finalizers": ["example.com/other"]}}, "other finalizers"),
        ("creds", {"metadata": {"finalizers": [SECRET_FINALIZER, "x.example/y"]}}, "finalizers"),
        ("creds", {"metadata": {"ownerReferences": [owner]}}, "ownerReferences"),
    ]

    def assert_refused() -> None:
        for secret, patch, message in refused:
            before = _state(kubectl, release, secret)
            proc = _as_operator(kubectl, release, secret, patch)
            assert proc.returncode != 0, f"{secret} {patch} was accepted"
            assert f"ValidatingAdmissionPolicy '{release.policy}'" in proc.stderr, proc.stderr
            assert message in proc.stderr, proc.stderr
            assert _state(kubectl, release, secret) == before

    assert_refused()
    creds, bare = _state(kubectl, release, "creds"), _state(kubectl, release, "bare")
    assert bare["data"] is None  # the absent-field cases above really had it absent

    # Protect both: the finalizer and the label, nothing else changes.
    for secret in ("creds", "bare"):
        proc = _as_operator(kubectl, release, secret, PROTECT)
        assert proc.returncode == 0, proc.stderr
    assert _state(kubectl, release, "creds") == {
        **creds,
        "labels": {"app": "crm", SECRET_FINALIZER: "true"},
        "finalizers": [SECRET_FINALIZER],
    }
    assert _state(kubectl, release, "bare") == {
        **bare,
        "labels": {SECRET_FINALIZER: "true"},
        "finalizers": [SECRET_FINALIZER],
    }
    assert_refused()  # still nothing else, with the finalizer and label on

    # A sharded release holds the Secret with its own finalizer and label beside the first.
    protected = _state(kubectl, release, "creds")
    shard = {
        "metadata": {"finalizers": [SECRET_FINALIZER, SHARD_HOLD], "labels": {SHARD_HOLD: "true"}}
    }
    proc = _as_operator(kubectl, release, "creds", shard)
    assert proc.returncode == 0, proc.stderr
    unshard = {"metadata": {"finalizers": [SECRET_FINALIZER], "labels": {SHARD_HOLD: None}}}
    proc = _as_operator(kubectl, release, "creds", unshard)
    assert proc.returncode == 0, proc.stderr
    assert _state(kubectl, release, "creds") == protected

    # `type` is immutable for everyone: the API server's validation refuses the change before
    # admission runs, so the policy never sees it (it would refuse it as well).
    for who in ([f"--as={release.operator}"], []):
        proc = _patch(kubectl, release, "creds", {"type": "example.com/other"}, *who)
        assert proc.returncode != 0, who
        assert "field is immutable" in proc.stderr, proc.stderr

    # Release both: back to exactly what they were.
    for secret in ("creds", "bare"):
        proc = _as_operator(kubectl, release, secret, RELEASE_PROTECTION)
        assert proc.returncode == 0, proc.stderr
    assert _state(kubectl, release, "creds") == creds
    assert _state(kubectl, release, "bare") == bare
    token = _state(kubectl, release, "creds")["data"]["token"]
    assert base64.b64decode(token).decode() == ORIGINAL_TOKEN


def test_other_users_are_not_affected(kubectl: Cli, release: Release) -> None:
    _wait_enforced(kubectl, release, enforced=True)
    for patch in (
        {"stringData": {"token": "rotated-by-admin"}},
        {"metadata": {"labels": {"extra": "x"}, "annotations": {"example.com/owner": "t"}}},
        PROTECT,
        RELEASE_PROTECTION,
    ):
        proc = _patch(kubectl, release, "creds", patch)  # the admin
        assert proc.returncode == 0, proc.stderr
    state = _state(kubectl, release, "creds")
    assert base64.b64decode(state["data"]["token"]).decode() == "rotated-by-admin"
    assert state["labels"] == {"app": "crm", "extra": "x"}


def test_refusals_come_from_the_policy_and_stop_when_disabled(
    kubectl: Cli, helm: Cli, release: Release
) -> None:
    _wait_enforced(kubectl, release, enforced=True)
    helm.run(
        "upgrade", release.name, str(CHART), "-n", release.namespace, "--reuse-values",
        "--set", "secretProtection.admissionPolicy=false",
    )  # fmt: skip
    assert not kubectl.exists("validatingadmissionpolicy", release.policy)
    assert not kubectl.exists("validatingadmissionpolicybinding", release.policy)
    _wait_enforced(kubectl, release, enforced=False)
    # RBAC alone (patch on Secrets) lets the operator change data: the policy is what stops it.
    proc = _as_operator(kubectl, release, "bare", {"stringData": {"token": "x"}})
    assert proc.returncode == 0, proc.stderr
    assert _state(kubectl, release, "bare")["data"] == {"token": _b64("x")}
