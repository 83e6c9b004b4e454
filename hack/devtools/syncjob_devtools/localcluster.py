"""A real Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager.

Used by the test suite, the demo and `syncjob-devtools cluster`. Binaries come from PATH
(hack/bootstrap.sh builds and caches them). Each instance gets free ports, its own temp dir,
its own CA and certificates, and an admin kubeconfig; `stop()` leaves no process behind, and
the children are tied to this process with PR_SET_PDEATHSIG so that even a SIGKILLed test
runner does not leak them.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message says which part and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the parent dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class _KeyPair:
    cert_pem: bytes
    key_pem: bytes


class _CertificateAuthority:
    """A throwaway CA that signs the apiserver's serving cert and the client certs."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncjob-local-ca")])
        self.cert = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
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
    def pair(self) -> _KeyPair:
        return _KeyPair(_pem(self.cert), _key_pem(self._key))

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        server_names: Sequence[str] = (),
        server_ips: Sequence[str] = (),
    ) -> _KeyPair:
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
        return _KeyPair(_pem(builder.sign(self._key, hashes.SHA256())), _key_pem(key))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def kubeconfig_document(
    server: str, ca_pem: bytes, client: _KeyPair, user: str
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


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class ControlPlane:
    """Start with `start()` or as a context manager; `kubeconfig` is usable once started."""

    workdir: Path | None = None
    keep_workdir: bool = False
    ready_timeout: float = 90.0
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    _processes: list[_Process] = field(default_factory=list, init=False)
    _owns_workdir: bool = field(default=False, init=False)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
        if missing:
            raise ControlPlaneError(
                f'missing binaries on PATH: {", ".join(missing)}; run: eval "$(hack/bootstrap.sh)"'
            )
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="syncjob-cp-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all(self.workdir)
        except BaseException:
            self.stop()
            raise

    def _start_all(self, work: Path) -> None:
        etcd_port, peer_port, api_port, kcm_port = (free_port() for _ in range(4))
        self.server = f"https://127.0.0.1:{api_port}"
        pki = work / "pki"
        pki.mkdir(exist_ok=True)
        ca = _CertificateAuthority()
        files = {
            "ca.crt": ca.pair.cert_pem,
            "ca.key": ca.pair.key_pem,
        }
        serving = ca.issue(
            "kube-apiserver",
            server_names=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
            server_ips=["127.0.0.1", "10.0.0.1"],
        )
        files |= {"apiserver.crt": serving.cert_pem, "apiserver.key": serving.key_pem}
        sa_key = ec.generate_private_key(ec.SECP256R1())
        files["sa.key"] = _key_pem(sa_key)
        files["sa.pub"] = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        admin = ca.issue("syncjob-admin", organizations=["system:masters"])
        files |= {"admin.crt": admin.cert_pem, "admin.key": admin.key_pem}
        for name, data in files.items():
            (pki / name).write_bytes(data)
            (pki / name).chmod(0o600)

        self.kubeconfig = work / "admin.kubeconfig"
        self._write_yaml(
            self.kubeconfig, kubeconfig_document(self.server, ca.pair.cert_pem, admin, "admin")
        )
        kcm_kubeconfig = work / "kube-controller-manager.kubeconfig"
        kcm = ca.issue("system:kube-controller-manager")
        self._write_yaml(
            kcm_kubeconfig, kubeconfig_document(self.server, ca.pair.cert_pem, kcm, "kcm")
        )

        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                "etcd",
                "--name=default",
                f"--data-dir={work / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # A throwaway cluster: durability costs fsync latency for nothing.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={work / 'apiserver'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )
        self._wait_for("kube-apiserver /readyz", "/readyz")
        self._spawn(
            "kube-controller-manager",
            [
                "kube-controller-manager",
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                # A single instance: leader election only adds lease traffic and delay.
                "--leader-elect=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                # As kubeadm: each controller acts as its own SA with its bootstrap role.
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
            ],
        )
        # The default ServiceAccount appears once kube-controller-manager's controllers run.
        self._wait_for(
            "kube-controller-manager (default ServiceAccount)",
            "/api/v1/namespaces/default/serviceaccounts/default",
        )

    @staticmethod
    def _write_yaml(path: Path, document: dict[str, object]) -> None:
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> None:
        assert self.workdir is not None
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                cwd=self.workdir,
            )
        self._processes.append(_Process(name, popen, log))

    def _wait_for(self, what: str, path: str) -> None:
        assert self.workdir is not None
        pki = self.workdir / "pki"
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        with httpx.Client(
            verify=_ssl_context(pki / "ca.crt", pki / "admin.crt", pki / "admin.key"), timeout=5
        ) as client:
            while time.monotonic() < deadline:
                for proc in self._processes:
                    if proc.popen.poll() is not None:
                        raise ControlPlaneError(
                            f"{proc.name} exited with code {proc.popen.returncode} while waiting"
                            f" for {what}; last log lines ({proc.log}):\n{proc.tail()}"
                        )
                try:
                    response = client.get(self.server + path)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.2)
        logs = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail(10)}" for p in self._processes)
        raise ControlPlaneError(
            f"timed out after {self.ready_timeout}s waiting for {what}: {last}\n{logs}"
        )

    def stop(self) -> None:
        for proc in reversed(self._processes):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in reversed(self._processes):
            try:
                proc.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
        self._processes.clear()
        if self._owns_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at this control plane, for child processes."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


def _ssl_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context
