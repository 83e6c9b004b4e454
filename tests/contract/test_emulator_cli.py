"""``syncjob-devtools emulators`` as its own process: ready file, outage, persistence, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    ready = tmp_path / "ready.json"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncjob_devtools.emulators",
            "--twinmaker-port=0",
            "--truto-port=0",
            f"--ready-file={ready}",
            "--truto-token=cli-token",
            *extra,
        ],
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert process.poll() is None, "emulators exited early"
        assert time.monotonic() < deadline, "emulators did not get ready"
        time.sleep(0.05)
    urls: dict[str, str] = json.loads(ready.read_text())
    return process, urls


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    process, urls = start(tmp_path, f"--persist={tmp_path / 'state'}")
    yield process, urls
    if process.poll() is None:
        stop(process)


def test_ready_file_names_two_listening_emulators(
    cli: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    _, urls = cli
    assert set(urls) == {"twinmaker", "truto"}
    unsigned = httpx.post(f"{urls['twinmaker']}/workspaces-list")
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    listed = httpx.get(f"{urls['truto']}/sync-job", headers={"Authorization": "Bearer cli-token"})
    assert listed.json() == {"result": [], "next_cursor": None, "limit": 100}


def test_outage_works_out_of_process(
    cli: tuple[subprocess.Popen[bytes], dict[str, str]], retrying: Any
) -> None:
    _, urls = cli
    with EmulatorAdmin(urls["truto"]) as admin, httpx.Client(base_url=urls["truto"]) as client:
        admin.outage(1.0)
        with pytest.raises(httpx.ConnectError):
            client.get("/sync-job")
        calls = retrying(admin.calls, httpx.ConnectError)
        assert calls.operations == {}  # refused connections never reached it


def test_sigterm_exits_cleanly_and_state_survives(tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer cli-token"}
    body = {"integration_name": "hubspot", "args_schema": {"type": "object"}}
    process, urls = start(tmp_path, f"--persist={tmp_path / 'state'}")
    job = httpx.post(f"{urls['truto']}/sync-job", json=body, headers=headers).json()
    assert stop(process) == 0
    assert (tmp_path / "state" / "truto.json").exists()
    process, urls = start(tmp_path, f"--persist={tmp_path / 'state'}")
    try:
        assert httpx.get(f"{urls['truto']}/sync-job/{job['id']}", headers=headers).json() == job
    finally:
        assert stop(process) == 0


def test_port_in_use_fails_with_exit_code_1(
    cli: tuple[subprocess.Popen[bytes], dict[str, str]], tmp_path: Path
) -> None:
    _, urls = cli
    port = urls["twinmaker"].rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "syncjob_devtools.emulators", f"--twinmaker-port={port}"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert b"cannot listen" in result.stderr


def test_aws_credentials_add_a_key_pair_beside_the_defaults(tmp_path: Path) -> None:
    process, urls = start(tmp_path, "--aws-credentials=AKIAMINE:my-secret")
    try:
        with EmulatorAdmin(urls["twinmaker"]) as admin:
            keys = {c.access_key_id: c.kind for c in admin.credentials()}
        assert keys["AKIAMINE"] == keys["AKIAEXAMPLEEXAMPLE00"] == "static"
        mine = twinmaker_client(urls["twinmaker"], access_key=("AKIAMINE", "my-secret"))
        assert mine.list_workspaces()["workspaceSummaries"] == []
    finally:
        assert stop(process) == 0
