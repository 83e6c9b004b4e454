"""The control plane's child processes: free loopback ports, spawning tied to this process's
life, log tails for error messages, and an orderly stop."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the parent dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Process:
    name: str
    argv: Sequence[str]
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn(
    name: str, argv: Sequence[str], workdir: Path, env: Mapping[str, str] | None = None
) -> Process:
    """Starts `argv` in `workdir` with its output appended to `<name>.log`, dying with this
    process."""
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            cwd=workdir,
            env=env,
        )
    return Process(name, argv, popen, log)


def stop_all(processes: Sequence[Process]) -> None:
    """SIGTERM in reverse start order, then wait; a process that lingers is killed."""
    for proc in reversed(processes):
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    for proc in reversed(processes):
        try:
            proc.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
