"""What a node changes on the host, and how it is put back: the Pod bridge, the sysctls and
iptables rules that the kubelet, kube-proxy and the CNI bridge plugin set, the network
namespaces, mounts and cgroups the runtime makes. `HostState` is a snapshot of all of it, so
a test can prove that a torn-down node left nothing behind."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# The Pod network: a bridge this module creates, whose gateway is also the node's address and
# where the control plane and the emulators listen, so that Pods reach them without anything
# outside the machine being involved.
BRIDGE = "syncjob0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.0.0.0/24"

# One node per host: its lock is held for the node's life (the kernel drops it when the
# holder dies, however it dies), and its record holds what `restore()` needs, so the next
# node puts back what a killed one left.
HOST_DIR = Path("/run/syncjob-node")
LOCK = HOST_DIR / "lock"
RECORD = HOST_DIR / "before.json"
LOCK_WAIT_SECONDS = 1800.0

# Set by the CNI bridge plugin (ip_forward) and kube-proxy (route_localnet, the bridge-nf
# switches); restored on teardown.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)
IPTABLES = ("iptables", "ip6tables")
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")
# Programs only a node runs: any of them alive after teardown is a leak.
NODE_PROGRAMS = frozenset(
    {"containerd", "containerd-shim", "containerd-shim-runc-v2", "kubelet", "kube-proxy"}
    | {"kube-scheduler", "k8s-pause", "runc"}
)


_SET_FIELDS = ("programs", "mounts", "netns", "links", "rules", "cgroups")


class HostError(RuntimeError):
    """The host lacks something the node needs; the message names it."""


def run(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=60)
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def _iptables_dump(tool: str) -> str:
    return run(f"{tool}-save", check=False)


def _normalised_rules(dump: str) -> frozenset[str]:
    """Rules and user chains of an iptables-save dump, without counters, comments and the
    built-in chains every table has (an emptied table compares equal to an absent one)."""
    builtin = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}
    table, kept = "", set()
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if chain not in builtin:
                kept.add(f"{table} :{chain}")
        elif line.startswith("-A"):
            kept.add(f"{table} {line}")
    return frozenset(kept)


@dataclass(frozen=True)
class HostState:
    """The parts of the host a node touches."""

    programs: frozenset[str]
    mounts: frozenset[str]
    netns: frozenset[str]
    links: frozenset[str]
    rules: frozenset[str]
    cgroups: frozenset[str]
    sysctls: tuple[tuple[str, str | None], ...]

    @classmethod
    def capture(cls) -> HostState:
        return cls(
            programs=frozenset(f"{pid} {name}" for pid, name in _node_processes()),
            mounts=frozenset(
                line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            ),
            netns=frozenset(p.name for p in NETNS_DIR.glob("*"))
            if NETNS_DIR.is_dir()
            else frozenset(),
            links=frozenset(
                line.split(":")[1].strip().split("@")[0]
                for line in run("ip", "-o", "link", "show").splitlines()
            ),
            rules=frozenset(
                f"{tool} {rule}"
                for tool in IPTABLES
                for rule in _normalised_rules(_iptables_dump(tool))
            ),
            cgroups=frozenset(
                f"{hierarchy.name}/{group.name}"
                for hierarchy in _hierarchies()
                for group in hierarchy.iterdir()
                if group.is_dir()
            ),
            sysctls=tuple((name, _read_sysctl(name)) for name in SYSCTLS),
        )

    def to_json(self) -> dict[str, Any]:
        sets = {name: sorted(getattr(self, name)) for name in _SET_FIELDS}
        return sets | {"sysctls": [list(pair) for pair in self.sysctls]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostState:
        return cls(
            programs=frozenset(data["programs"]),
            mounts=frozenset(data["mounts"]),
            netns=frozenset(data["netns"]),
            links=frozenset(data["links"]),
            rules=frozenset(data["rules"]),
            cgroups=frozenset(data["cgroups"]),
            sysctls=tuple((name, value) for name, value in data["sysctls"]),
        )

    def left_behind(self, after: HostState) -> dict[str, list[str]]:
        """What `after` holds that this snapshot did not, by kind; empty when clean."""
        added = {
            "processes": after.programs - self.programs,
            "mounts": after.mounts - self.mounts,
            "network namespaces": after.netns - self.netns,
            "links": after.links - self.links,
            "iptables rules": after.rules - self.rules,
            "cgroups": after.cgroups - self.cgroups,
        }
        found = {kind: sorted(items) for kind, items in added.items() if items}
        changed = [
            f"{name}: {before} -> {now}"
            for (name, before), (_, now) in zip(self.sysctls, after.sysctls, strict=True)
            if before != now
        ]
        if changed:
            found["sysctls"] = changed
        return found


def _hierarchies() -> list[Path]:
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]


def _node_processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = Path(os.readlink(entry / "exe")).name
        except OSError:
            continue
        if name in NODE_PROGRAMS:
            found.append((int(entry.name), name))
    return found


class HostChanges:
    """Sets up the Pod bridge and records the host state to restore: `create()` before the
    control plane binds the gateway, `restore()` after every node process has stopped.

    A second node on the host waits for the first; a node killed before its teardown is
    torn down by the next one, from the record it left."""

    def __init__(self) -> None:
        self._before: HostState | None = None
        self._dumps: dict[str, str] = {}
        self._lock: IO[str] | None = None

    def create(self) -> None:
        for tool in ("ip", "iptables-save", "iptables-restore", "ip6tables-save"):
            if run("sh", "-c", f"command -v {tool}", check=False) == "":
                raise HostError(f"{tool} is missing: run hack/install-debs.sh as root")
        if os.geteuid() != 0:
            raise HostError("the node tier needs root (network namespaces, mounts, iptables)")
        self._lock = _hold_node_lock()
        try:
            self._restore_killed_node()
            if BRIDGE in HostState.capture().links:
                raise HostError(
                    f"bridge {BRIDGE} exists and no node records it: something outside this"
                    f" project made it (remove it with: ip link delete {BRIDGE})"
                )
            self._before = HostState.capture()
            self._dumps = {tool: _iptables_dump(tool) for tool in IPTABLES}
            RECORD.write_text(json.dumps({"before": self._before.to_json(), "dumps": self._dumps}))
        except BaseException:
            self._release_lock()
            raise
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")

    def restore(self) -> None:
        if self._before is None:
            return
        kill_node_processes(self._before.programs)
        remove_netns(self._before.netns)
        unmount_new(self._before.mounts)
        remove_cgroups(self._before.cgroups)
        run("ip", "link", "delete", BRIDGE, check=False)
        for tool, dump in self._dumps.items():
            _restore_rules(tool, dump)
        for name, value in self._before.sysctls:
            if value is not None and _read_sysctl(name) != value:
                (Path("/proc/sys") / name).write_text(value)
        self._before = None
        RECORD.unlink(missing_ok=True)
        self._release_lock()

    def _restore_killed_node(self) -> None:
        """Tears down what a node killed before its own teardown left, from its record."""
        if not RECORD.exists():
            return
        recorded = json.loads(RECORD.read_text())
        self._before = HostState.from_json(recorded["before"])
        self._dumps = recorded["dumps"]
        lock, self._lock = self._lock, None
        try:
            self.restore()
        finally:
            self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _hold_node_lock() -> IO[str]:
    HOST_DIR.mkdir(parents=True, exist_ok=True)
    lock = LOCK.open("a")
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise HostError(
                    f"another node held {LOCK} for {LOCK_WAIT_SECONDS:.0f} s; only one node"
                    " runs on a host at a time"
                ) from None
            time.sleep(1)


def kill_node_processes(before: frozenset[str]) -> None:
    """SIGKILLs what the node left running and `before` did not hold: shims, Pod sandboxes
    and containers (the shims reparent to init, out of reach of the parent-death signal)."""
    for pid in _pids_in_new_cgroups():
        _kill(pid)

    def new() -> list[int]:
        return [pid for pid, name in _node_processes() if f"{pid} {name}" not in before]

    for pid in new():
        _kill(pid)
    deadline = time.monotonic() + 10
    while new() and time.monotonic() < deadline:
        time.sleep(0.1)


def _pids_in_new_cgroups() -> Iterable[int]:
    pids = CGROUP_ROOT / "pids" / "kubepods"
    if pids.is_dir():
        for procs in pids.rglob("cgroup.procs"):
            for line in procs.read_text().split():
                yield int(line)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def remove_netns(before: frozenset[str]) -> None:
    if not NETNS_DIR.is_dir():
        return
    for ns in NETNS_DIR.iterdir():
        if ns.name not in before:
            run("ip", "netns", "delete", ns.name, check=False)
            run("umount", str(ns), check=False)
            ns.unlink(missing_ok=True)


def unmount_new(before: frozenset[str]) -> None:
    """Unmounts, deepest first, every mount that appeared since `before` (overlay rootfs,
    Pod volumes, the kubelet's tmpfs projections)."""
    for _ in range(5):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        new = sorted((m for m in mounts if m not in before), key=len, reverse=True)
        if not new:
            return
        for mount in new:
            run("umount", "-l", mount, check=False)


def remove_cgroups(before: frozenset[str]) -> None:
    for hierarchy in _hierarchies():
        for group in list(hierarchy.iterdir()):
            if group.is_dir() and f"{hierarchy.name}/{group.name}" not in before:
                # Children first: a cgroup directory is removed with rmdir, never rm -r.
                for child in sorted(group.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                    if child.is_dir():
                        _rmdir(child)
                _rmdir(group)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


_TABLE = re.compile(r"^\*(\w+)$", re.MULTILINE)


def _restore_rules(tool: str, before: str) -> None:
    """Puts the rule set back as it was: tables that existed are restored from their dump,
    tables that appeared are flushed and their chains deleted."""
    existed = set(_TABLE.findall(before))
    for table in set(_TABLE.findall(_iptables_dump(tool))) - existed:
        run(tool, "-t", table, "-F", check=False)
        run(tool, "-t", table, "-X", check=False)
    if existed:
        run(f"{tool}-restore", stdin=before)
