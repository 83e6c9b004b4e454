"""The operator as its own process against a local control plane: for the demo and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from syncjob_devtools.localcluster import die_with_parent, free_port

CRDS_DIR = Path(__file__).resolve().parents[3] / "crds"  # the checkout's crds/


def aws_key_pair() -> tuple[str, str]:
    """The access key and secret the operator signs with: the environment's, else a pair the
    TwinMaker emulator accepts by default (it verifies signatures)."""
    return (
        os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    )


@dataclass
class OperatorProcess:
    """`syncjob-operator run` in a child process, with its log in `log_path`."""

    kubeconfig: Path
    log_path: Path
    twinmaker_url: str | None = None
    truto_url: str | None = None
    extra_args: Sequence[str] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # None: the operator's own default (no flag passed).
    resync_seconds: float | None = 60.0
    poll_seconds: float | None = 0.5
    metrics_port: int = field(default_factory=free_port)
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        assert self._popen is not None, "not started"
        return self._popen.pid

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, *, ready_timeout: float = 60, wait_ready: bool = True) -> None:
        """Starts the process; by default returns once it is ready (it is not, for one, until the
        API server serves SyncJobs)."""
        access_key, secret_key = aws_key_pair()
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        timers = {"--resync-seconds": self.resync_seconds, "--poll-seconds": self.poll_seconds}
        argv = [
            sys.executable,
            "-m",
            "syncjob_operator",
            "run",
            f"--metrics-address=127.0.0.1:{self.metrics_port}",
            f"--liveness=http://127.0.0.1:{free_port()}/healthz",
            # Before extra_args, which may name the same flags (the last one wins).
            *(f"{flag}={value}" for flag, value in timers.items() if value is not None),
            *self.extra_args,
        ]
        if self.twinmaker_url:
            argv.append(f"--twinmaker-endpoint-url={self.twinmaker_url}")
        if self.truto_url:
            argv.append(f"--truto-base-url={self.truto_url}")
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
            )
        if wait_ready:
            self._wait_ready(ready_timeout)

    @property
    def exit_code(self) -> int | None:
        """None while the process runs (or before it starts), then how it ended."""
        return None if self._popen is None else self._popen.poll()

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.metrics_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._popen is not None
            if self._popen.poll() is not None:
                raise RuntimeError(
                    f"the operator exited with {self._popen.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.metrics_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the operator was not ready after {timeout}s:\n{self.log_tail()}")

    def metrics(self) -> str:
        return httpx.get(f"{self.metrics_url}/metrics", timeout=5).text

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash or an OOM kill."""
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(signal.SIGKILL)
            self._popen.wait()

    def stop(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
