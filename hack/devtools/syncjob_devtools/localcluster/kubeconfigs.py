"""Kubeconfig files for the control plane's clients (the admin, kube-controller-manager)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from syncjob_devtools.localcluster.certificates import KeyPair


def kubeconfig_document(
    server: str, ca_pem: bytes, client: KeyPair, user: str
) -> dict[str, object]:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert_pem),
                    "client-key-data": b64(client.key_pem),
                },
            }
        ],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": user, "namespace": "default"}}
        ],
        "current-context": "local",
    }


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, client: KeyPair, user: str) -> Path:
    path.write_text(yaml.safe_dump(kubeconfig_document(server, ca_pem, client, user)))
    path.chmod(0o600)  # it holds a client key
    return path
