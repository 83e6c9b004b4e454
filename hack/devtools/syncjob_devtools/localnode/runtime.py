"""The node's container runtime: Debian's containerd 1.6 with runc and the CNI bridge, under
a root, state and socket of its own, and images loaded from archives (no registry)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

from syncjob_devtools.localcluster.processes import Process, spawn
from syncjob_devtools.localnode.host import (
    BRIDGE,
    GATEWAY,
    POD_CIDR,
    SERVICE_CIDR,
    HostError,
    run,
)

# The sandbox image containerd starts every Pod with; built from k8s-pause, never pulled.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
CNI_BIN_DIR = Path("/usr/lib/cni")
NAMESPACE = "k8s.io"  # containerd's namespace for CRI (kubelet) objects


def containerd_config(work: Path, socket: Path) -> str:
    """containerd 1.6 (config version 2). restrict_oom_score_adj: the kubelet asks for -998 on
    every sandbox, which a VM without CAP_SYS_RESOURCE in its bounding set cannot grant; runc
    then fails sandbox creation ("can't get final child's PID from pipe")."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{work / "root"}"
state = "{work / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{work / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{work / "cni"}"
    max_conf_num = 1
"""


def cni_config(work: Path) -> dict[str, object]:
    """One bridge network. Pods route only to their subnet and the Service range: there is no
    default route, so nothing outside this machine can be reached from a Pod."""
    return {
        "cniVersion": "0.4.0",
        "name": "syncjob",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                    "routes": [{"dst": SERVICE_CIDR}],
                    "dataDir": str(work / "ipam"),
                },
            }
        ],
    }


class Containerd:
    """containerd started as a child of this process; `images` loads archives into the CRI
    namespace, where the kubelet finds them with pullPolicy IfNotPresent or Never."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.socket = work / "containerd.sock"
        self.process: Process | None = None

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        for binary in ("containerd", "containerd-shim-runc-v2", "runc"):
            if shutil.which(binary) is None:
                raise HostError(f"{binary} is missing: run hack/install-debs.sh as root")
        if not (CNI_BIN_DIR / "bridge").exists():
            raise HostError(f"CNI plugins missing in {CNI_BIN_DIR}: run hack/install-debs.sh")
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "cni").mkdir(exist_ok=True)
        (self.work / "cni" / "10-syncjob.conflist").write_text(
            json.dumps(cni_config(self.work), indent=2)
        )
        config = self.work / "config.toml"
        config.write_text(containerd_config(self.work, self.socket))
        self.process = spawn(
            "containerd", ["containerd", f"--config={config}", "--log-level=warn"], self.work
        )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.process.popen.poll() is not None or time.monotonic() > deadline:
                raise HostError(f"containerd did not start:\n{self.process.tail()}")
            time.sleep(0.1)
        self.load(pause_image_archive(self.work / "pause.tar"))

    def ctr(self, *args: str, check: bool = True) -> str:
        return run(
            "ctr", f"--address={self.socket}", f"--namespace={NAMESPACE}", *args, check=check
        )

    def load(self, archive: Path) -> None:
        """Imports a docker-archive or OCI archive, keeping the names it carries."""
        self.ctr("images", "import", str(archive))

    def images(self) -> list[str]:
        return self.ctr("images", "list", "--quiet").split()

    def stop_containers(self) -> None:
        """Kills every task the kubelet left, so that containerd stops with nothing running."""
        for task in self.ctr("tasks", "list", "--quiet").split():
            self.ctr("tasks", "kill", "--signal=SIGKILL", task, check=False)


def pause_image_archive(path: Path) -> Path:
    """A docker-archive holding k8s-pause (from hack/build-kube-bins.sh) as /pause, named
    PAUSE_IMAGE: one layer, a config with its entrypoint."""
    binary = shutil.which("k8s-pause")
    if binary is None:
        raise HostError('k8s-pause is missing on PATH: run eval "$(hack/bootstrap.sh)"')
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(binary, arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        with open(binary, "rb") as pause:
            tar.addfile(info, pause)
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": [f"{diff_id}/layer.tar"]}]
    ).encode()
    with tarfile.open(path, mode="w") as archive:
        for name, data in (
            (f"{diff_id}/layer.tar", layer_bytes),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
