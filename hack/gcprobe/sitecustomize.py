"""Time the operator process spends in Python's cyclic garbage collector, for benchmarks.

Put this directory on PYTHONPATH and every `syncjob_operator run` process started with it
appends, every 2 s, its CPU time and the collector's count and CPU time per generation to
`$GCPROBE_DIR/series.<pid>.jsonl` (default: the working directory); other processes are
left alone:

    PYTHONPATH=hack/gcprobe GCPROBE_DIR=/tmp/gc python hack/bench_operator.py --jobs 500
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_COMMAND = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _install() -> None:
    started = [0.0]
    totals = {generation: [0, 0.0] for generation in (0, 1, 2)}  # collections, CPU seconds

    def on_collect(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            total = totals[info["generation"]]
            total[0] += 1
            total[1] += time.process_time() - started[0]

    def record() -> None:
        out = Path(os.environ.get("GCPROBE_DIR", ".")) / f"series.{os.getpid()}.jsonl"
        while True:
            time.sleep(2)
            sample = {"t": time.time(), "cpu": time.process_time(), "gc": totals}
            with out.open("a") as file:
                file.write(json.dumps(sample) + "\n")

    gc.callbacks.append(on_collect)
    threading.Thread(target=record, daemon=True).start()


if "syncjob_operator run" in _COMMAND:
    _install()
