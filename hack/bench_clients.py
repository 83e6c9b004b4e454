#!/usr/bin/env python3
"""CPU per call of the provider clients the operator uses, measured on the client's side alone.

Starts the emulators as their own process (as hack/bench_emulators.py does), then makes
`--calls` sequential calls of each kind from this process over keep-alive connections and
reports this process's CPU time per call: TwinMaker `GetSyncJob` and `ListSyncJobs` through a
boto3 client (the emulators' test client: the operator's differs in its retry settings), and
Truto `GET /sync-job/{id}` through an `httpx.AsyncClient`. What a SyncJob's remote calls cost
the operator, whatever the operator does around them.

    python hack/bench_clients.py --calls 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_emulators import TOKEN, WORKSPACE, seed, start_emulators

from syncjob_devtools.emulators.admin import twinmaker_client


def cpu_ms_per_call(calls: int, call: Callable[[], object]) -> float:
    call()  # the connection and any lazy set-up are not counted
    started = time.process_time()
    for _ in range(calls):
        call()
    return round(1000 * (time.process_time() - started) / calls, 3)


async def httpx_cpu_ms_per_call(calls: int, url: str) -> float:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        (await client.get(url)).raise_for_status()
        started = time.process_time()
        for _ in range(calls):
            (await client.get(url)).raise_for_status()
        return round(1000 * (time.process_time() - started) / calls, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        emulators = start_emulators(ready)
        try:
            urls = json.loads(ready.read_text())
            truto_job = seed(urls)
            twinmaker = twinmaker_client(urls["twinmaker"])
            figures = {
                "boto3 GetSyncJob": cpu_ms_per_call(
                    args.calls,
                    lambda: twinmaker.get_sync_job(workspaceId=WORKSPACE, syncSource="SITEWISE"),
                ),
                "boto3 ListSyncJobs": cpu_ms_per_call(
                    args.calls, lambda: twinmaker.list_sync_jobs(workspaceId=WORKSPACE)
                ),
                "httpx Truto GET /sync-job/{id}": asyncio.run(
                    httpx_cpu_ms_per_call(args.calls, f"{urls['truto']}/sync-job/{truto_job}")
                ),
            }
        finally:
            emulators.terminate()
            emulators.wait(timeout=10)
    print(json.dumps({"calls_each": args.calls, "client_cpu_ms_per_call": figures}, indent=2))


if __name__ == "__main__":
    main()
