"""The control plane: etcd, then kube-apiserver, then kube-controller-manager, each started
once the one before answers, on free loopback ports in a work directory of its own. With an
`address` other than loopback (the gateway of the node tier's bridge), kube-apiserver listens
and advertises there instead, so that Pods reach it through the `kubernetes` Service."""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from syncjob_devtools.localcluster.certificates import Pki, write_pki
from syncjob_devtools.localcluster.kubeconfigs import write_kubeconfig
from syncjob_devtools.localcluster.processes import Process, free_port, spawn, stop_all

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message says which part and why."""


@dataclass
class ControlPlane:
    """Start with `start()` or as a context manager; `kubeconfig` is usable once started."""

    workdir: Path | None = None
    keep_workdir: bool = False
    address: str = "127.0.0.1"
    ready_timeout: float = 90.0
    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    pki: Pki = field(init=False)
    _processes: list[Process] = field(default_factory=list, init=False)
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
        api_port = free_port(self.address)
        self.server = f"https://{self.address}:{api_port}"
        self.pki = pki = write_pki(work / "pki", self.address)
        self.kubeconfig = write_kubeconfig(
            work / "admin.kubeconfig", self.server, pki.ca.cert_pem, pki.admin, "admin"
        )
        etcd_url = self._start_etcd(work)
        self._start_apiserver(work, pki, etcd_url, api_port)
        self._wait_for("kube-apiserver /readyz", "/readyz")
        self._start_controller_manager(work, pki)
        # The default ServiceAccount appears once kube-controller-manager's controllers run.
        self._wait_for(
            "kube-controller-manager (default ServiceAccount)",
            "/api/v1/namespaces/default/serviceaccounts/default",
        )

    def _start_etcd(self, work: Path) -> str:
        etcd_url = f"http://127.0.0.1:{free_port()}"
        peer_url = f"http://127.0.0.1:{free_port()}"
        argv = [
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
        ]
        self._processes.append(spawn("etcd", argv, work))
        return etcd_url

    def _start_apiserver(self, work: Path, pki: Pki, etcd_url: str, port: int) -> None:
        argv = [
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={port}",
            f"--cert-dir={work / 'apiserver'}",
            f"--tls-cert-file={pki.path('apiserver.crt')}",
            f"--tls-private-key-file={pki.path('apiserver.key')}",
            f"--client-ca-file={pki.path('ca.crt')}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.path('sa.pub')}",
            f"--service-account-signing-key-file={pki.path('sa.key')}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # Node: a kubelet (syncjob_devtools.localnode) reads only its own Pods' objects.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            # The apiserver reaches a kubelet (logs, exec) at its node's InternalIP, as admin.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki.path('admin.crt')}",
            f"--kubelet-client-key={pki.path('admin.key')}",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        self._processes.append(spawn("kube-apiserver", argv, work))

    def _start_controller_manager(self, work: Path, pki: Pki) -> None:
        kubeconfig = write_kubeconfig(
            work / "kube-controller-manager.kubeconfig",
            self.server,
            pki.ca.cert_pem,
            pki.controller_manager,
            "kcm",
        )
        argv = [
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            # A single instance: leader election only adds lease traffic and delay.
            "--leader-elect=false",
            f"--service-account-private-key-file={pki.path('sa.key')}",
            f"--root-ca-file={pki.path('ca.crt')}",
            # As kubeadm: each controller acts as its own SA with its bootstrap role.
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki.path('ca.crt')}",
            f"--cluster-signing-key-file={pki.path('ca.key')}",
        ]
        self._processes.append(spawn("kube-controller-manager", argv, work))

    def restart_apiserver(self, down_seconds: float = 0.0) -> None:
        """An API-server outage, as a crash or an upgrade makes one: SIGKILLs kube-apiserver,
        keeps it down `down_seconds`, starts it again with the same flags (and so the same port
        and etcd: nothing stored is lost), and returns once it answers /readyz."""
        assert self.workdir is not None, "not started"
        at, old = next((i, p) for i, p in enumerate(self._processes) if p.name == "kube-apiserver")
        old.popen.kill()
        old.popen.wait()
        time.sleep(down_seconds)
        self._processes[at] = spawn(old.name, old.argv, self.workdir)
        self._wait_for("kube-apiserver /readyz after a restart", "/readyz")

    def _wait_for(self, what: str, path: str) -> None:
        """Polls the apiserver as the admin until `path` answers 200; fails fast, with the
        logs, when a child exits or the deadline passes."""
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer yet"
        with self.admin_client() as client:
            while time.monotonic() < deadline:
                self._fail_if_exited(what)
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

    def admin_client(self) -> httpx.Client:
        """An httpx client that authenticates to the apiserver as the admin."""
        pki = self.pki
        context = _ssl_context(pki.path("ca.crt"), pki.path("admin.crt"), pki.path("admin.key"))
        return httpx.Client(verify=context, timeout=5)

    def _fail_if_exited(self, what: str) -> None:
        for proc in self._processes:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with code {proc.popen.returncode} while waiting"
                    f" for {what}; last log lines ({proc.log}):\n{proc.tail()}"
                )

    def stop(self) -> None:
        stop_all(self._processes)
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
