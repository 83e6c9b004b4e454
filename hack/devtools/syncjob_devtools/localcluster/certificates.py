"""The control plane's PKI: a throwaway CA, the apiserver's serving certificate, client
certificates, and the ServiceAccount signing key, written as files the binaries read."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The names and addresses clients reach the apiserver by, in-cluster and on loopback.
APISERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


class CertificateAuthority:
    """A throwaway CA that signs the apiserver's serving cert and the client certs."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncjob-local-ca")])
        usage = x509.KeyUsage(
            digital_signature=True,
            key_cert_sign=True,
            crl_sign=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            encipher_only=False,
            decipher_only=False,
        )
        self.cert = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
        )

    @property
    def pair(self) -> KeyPair:
        return KeyPair(pem(self.cert), key_pem(self._key))

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server_names: Sequence[str] = (),
        server_ips: Sequence[str] = (),
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        server = bool(server_names or server_ips)
        builder = self._builder(x509.Name(attributes), key.public_key()).add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        if server:
            sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return KeyPair(pem(builder.sign(self._key, hashes.SHA256())), key_pem(key))


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


# The one node of the node tier (syncjob_devtools.localnode), as the Node authorizer names it.
NODE_NAME = "syncjob-node"


@dataclass(frozen=True)
class Pki:
    """The files in `directory` and the pairs kubeconfigs are made from. The node's pairs are
    minted with the rest (a few EC keys) so that a node can join any control plane."""

    directory: Path
    ca: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    proxy: KeyPair
    node: KeyPair
    kubelet_serving: KeyPair

    def path(self, name: str) -> Path:
        return self.directory / name


def write_pki(directory: Path, address: str = "127.0.0.1") -> Pki:
    """Mints every certificate and key the control plane and its node need and writes them
    (mode 0600). `address` is where the apiserver listens, named in its serving cert."""
    directory.mkdir(exist_ok=True)
    ca = CertificateAuthority()
    ips = tuple(dict.fromkeys((*APISERVER_IPS, address)))
    serving = ca.issue("kube-apiserver", server_names=APISERVER_NAMES, server_ips=ips)
    admin = ca.issue("syncjob-admin", organizations=["system:masters"])
    service_accounts = ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca.crt": ca.pair.cert_pem,
        "ca.key": ca.pair.key_pem,
        "apiserver.crt": serving.cert_pem,
        "apiserver.key": serving.key_pem,
        "sa.key": key_pem(service_accounts),
        "sa.pub": service_accounts.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "admin.crt": admin.cert_pem,
        "admin.key": admin.key_pem,
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)
    return Pki(
        directory,
        ca.pair,
        admin,
        controller_manager=ca.issue("system:kube-controller-manager"),
        # The identities Kubernetes' bootstrap RBAC and the Node authorizer expect.
        scheduler=ca.issue("system:kube-scheduler"),
        proxy=ca.issue("system:kube-proxy"),
        node=ca.issue(f"system:node:{NODE_NAME}", organizations=["system:nodes"]),
        kubelet_serving=ca.issue(NODE_NAME, server_names=[NODE_NAME], server_ips=[address]),
    )
