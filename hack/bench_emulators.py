#!/usr/bin/env python3
"""Throughput of the sync-job emulators, as the CLI serves them.

Starts ``python -m syncjob_devtools.emulators`` (the same code as
``syncjob-devtools emulators``) on free loopback ports, seeds one TwinMaker
workspace + sync job and one Truto sync job, then drives a mix of GetSyncJob,
ListSyncJobs, Truto ``GET /sync-job/{id}`` and ``GET /sync-job`` from separate
worker processes over keep-alive connections for a fixed time, and prints req/s.

The load generator speaks HTTP/1.1 over raw asyncio streams with pre-built
(SigV4-signed) requests, so the client spends little CPU and the figure measures
the server. Every response's status is checked, and the total is cross-checked
against the emulators' own call counters.

    python hack/bench_emulators.py --duration 10 --workers 1 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from syncjob_devtools.emulators.admin import EmulatorAdmin, twinmaker_client

TOKEN = "bench-token"
WORKSPACE = "bench"
Request = tuple[str, bytes]  # (operation label, raw HTTP/1.1 request)


def start_emulators(ready_file: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "syncjob_devtools.emulators",
        "--twinmaker-port=0",
        "--truto-port=0",
        "--transition-seconds=0",
        f"--truto-token={TOKEN}",
        f"--ready-file={ready_file}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("emulators did not start")
        time.sleep(0.05)
    return process


def seed(urls: dict[str, str]) -> str:
    twinmaker = twinmaker_client(urls["twinmaker"])
    twinmaker.create_workspace(workspaceId=WORKSPACE)
    twinmaker.create_sync_job(
        workspaceId=WORKSPACE,
        syncSource="SITEWISE",
        syncRole="arn:aws:iam::123456789012:role/bench",
    )
    job = httpx.post(
        f"{urls['truto']}/sync-job",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={
            "integration_name": "hubspot",
            "args_schema": {"type": "object", "properties": {}},
            "resources": [{"resource": "crm/contacts", "method": "list"}],
        },
    )
    job.raise_for_status()
    job_id: str = job.json()["id"]
    return job_id


def _raw(method: str, url: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _signed(method: str, url: str, body: bytes = b"") -> bytes:
    request = AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(Credentials("bench", "bench"), "iottwinmaker", "us-east-1").add_auth(request)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    return _raw(method, url, headers, body)


def build_requests(urls: dict[str, str], truto_job: str) -> list[Request]:
    tm, tr = urls["twinmaker"], urls["truto"]
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    return [
        ("GetSyncJob", _signed("GET", f"{tm}/sync-jobs/SITEWISE?workspace={WORKSPACE}")),
        ("ListSyncJobs", _signed("POST", f"{tm}/workspaces/{WORKSPACE}/sync-jobs-list", b"{}")),
        ("Truto GetSyncJob", _raw("GET", f"{tr}/sync-job/{truto_job}", bearer)),
        ("Truto ListSyncJobs", _raw("GET", f"{tr}/sync-job?limit=10", bearer)),
    ]


async def _connection(
    address: tuple[str, int], requests: list[tuple[str, bytes]], offset: int, until: float
) -> tuple[Counter[str], Counter[int], list[float]]:
    reader, writer = await asyncio.open_connection(*address)
    done: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    index = offset
    while time.monotonic() < until:
        label, raw = requests[index % len(requests)]
        index += 1
        started = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        statuses[int(head.split(b" ", 2)[1])] += 1
        done[label] += 1
    writer.close()
    return done, statuses, latencies


async def _worker_main(
    targets: list[tuple[str, int, str, bytes]], connections: int, duration: float
) -> dict[str, Any]:
    started = time.monotonic()
    until = started + duration
    jobs = []
    for n in range(connections):
        host, port = targets[n % len(targets)][:2]
        # Each connection talks to one server; spread the mix across connections.
        same_server = [(lb, r) for h, p, lb, r in targets if (h, p) == (host, port)]
        jobs.append(_connection((host, port), same_server, n, until))
    results = await asyncio.gather(*jobs)
    done: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for d, s, lat in results:
        done += d
        statuses += s
        latencies += lat
    elapsed = time.monotonic() - started
    return {
        "done": dict(done),
        "statuses": dict(statuses),
        "latencies": latencies,
        "elapsed": elapsed,
    }


def _worker(
    targets: list[tuple[str, int, str, bytes]],
    connections: int,
    duration: float,
    out: multiprocessing.Queue[dict[str, Any]],
) -> None:
    out.put(asyncio.run(_worker_main(targets, connections, duration)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1, help="load-generator processes")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections each")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ready_file = Path(tmp) / "ready.json"
        emulators = start_emulators(ready_file)
        try:
            urls: dict[str, str] = json.loads(ready_file.read_text())
            requests = build_requests(urls, seed(urls))
            for url in urls.values():
                EmulatorAdmin(url).reset(state=False)
            targets = []
            for label, raw in requests:
                base = urls["truto"] if label.startswith("Truto") else urls["twinmaker"]
                parts = urlsplit(base)
                targets.append((parts.hostname or "", parts.port or 80, label, raw))
            queue: multiprocessing.Queue[dict[str, Any]] = multiprocessing.Queue()
            workers = [
                multiprocessing.Process(
                    target=_worker, args=(targets, args.connections, args.duration, queue)
                )
                for _ in range(args.workers)
            ]
            for worker in workers:
                worker.start()
            results = [queue.get() for _ in workers]
            for worker in workers:
                worker.join()
            served = sum(
                sum(EmulatorAdmin(url).calls().operations.values()) for url in urls.values()
            )
        finally:
            emulators.send_signal(signal.SIGTERM)
            emulators.wait(timeout=20)

    done: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for result in results:
        done += Counter(result["done"])
        statuses += Counter({int(k): v for k, v in result["statuses"].items()})
        latencies += result["latencies"]
    total = sum(done.values())
    elapsed = max(result["elapsed"] for result in results)
    latencies.sort()
    # The CLI runs in this interpreter and environment, so uvicorn picks what is importable here.
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    print(f"cpus={os.cpu_count()} server http={http} loop={loop}")
    print(f"workers={args.workers} connections/worker={args.connections}")
    print(f"duration={elapsed:.1f}s requests={total} statuses={dict(statuses)}")
    for label, count in sorted(done.items()):
        print(f"  {label:<20} {count / elapsed:8.0f} req/s")
    print(
        f"latency p50={latencies[len(latencies) // 2] * 1000:.1f}ms "
        f"p99={latencies[int(len(latencies) * 0.99)] * 1000:.1f}ms"
    )
    print(f"server-side count={served} (client count {total})")
    print(f"TOTAL {total / elapsed:.0f} req/s")
    return 0 if set(statuses) == {200} and served == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
