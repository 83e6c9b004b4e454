"""kubectl and helm driven as real subprocesses against the test control plane."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class CommandFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Cli:
    """Runs one CLI (kubectl or helm) with the control plane's environment."""

    binary: str
    env: dict[str, str]

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise CommandFailed(
                f"{self.binary} {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("apply", "-f", "-", *args, stdin=manifest)

    def exists(self, *args: str) -> bool:
        proc = self.run("get", *args, check=False)
        if proc.returncode == 0:
            return True
        if "NotFound" in proc.stderr:
            return False
        raise CommandFailed(f"kubectl get {' '.join(args)}: {proc.stderr}")


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 60, interval: float = 0.25, what: str = ""
) -> Any:
    """Polls until predicate() is truthy and returns it; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate}; last: {last!r}"
    )


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions: Sequence[dict[str, Any]] = obj.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c.get("type") == kind), None)
