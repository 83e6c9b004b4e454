"""Chaos run: many SyncJobs applied at once under injected faults (500s and latency on every
emulator operation; writes that take effect and then fail with a 500, a reset connection or an
answer slower than the operator's timeout), the operator SIGKILLed again and again while they
converge, while every spec changes and while they are deleted; the verdict is counted on the
emulators. Starts its own control plane and
emulators, prints the report as JSON, exits 1 when the verdict found problems.

    python hack/chaos.py --jobs 200 --kills-create 20 --kills-update 10 --kills-delete 10

Bounded: every phase has a deadline (--converge-timeout, --delete-timeout).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from syncjob_devtools.emulators.admin import EmulatorAdmin
from syncjob_devtools.emulators.server import RunningEmulators
from syncjob_devtools.emulators.truto import TrutoConfig
from syncjob_devtools.emulators.twinmaker import TwinMakerConfig
from syncjob_devtools.localcluster import ControlPlane
from syncjob_devtools.localrun import CRDS_DIR

REPO = Path(__file__).resolve().parents[1]
TOKEN = "chaos-token"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="SyncJobs in all")
    parser.add_argument("--truto-share", type=float, default=0.6, help="fraction that is Truto")
    parser.add_argument("--integrations", type=int, default=3, help="Truto integrations")
    parser.add_argument("--kills-create", type=int, default=20)
    parser.add_argument("--kills-update", type=int, default=10)
    parser.add_argument("--kills-delete", type=int, default=10)
    parser.add_argument("--resync-seconds", type=float, default=5.0)
    parser.add_argument("--error-rate", type=float, default=0.1, help="500s on every operation")
    parser.add_argument("--latency-ms", type=int, default=150, help="added to every operation")
    parser.add_argument(
        "--post-commit-rate",
        type=float,
        default=0.06,
        help="share of writes that take effect, then fail (5xx, reset, slow answer alike)",
    )
    parser.add_argument(
        "--slow-response-ms",
        type=int,
        default=None,
        help="how long a slow answer is held; default: the operator's read timeout + 2 s",
    )
    parser.add_argument("--converge-timeout", type=float, default=300.0)
    parser.add_argument("--update-timeout", type=float, default=180.0)
    parser.add_argument("--delete-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=None, help="kill timing, to repeat a run")
    parser.add_argument("--log-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument("--no-cleanup", action="store_true", help="keep the SyncJobs' leftovers")
    args = parser.parse_args()

    # tests/ is not on the venv's path (PYTHONPATH is operator/ only): add the checkout.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.support.chaos import ChaosParams, run_chaos
    from tests.support.kube import Cli

    slow = {} if args.slow_response_ms is None else {"slow_response_ms": args.slow_response_ms}
    params = ChaosParams(
        jobs=args.jobs,
        truto_share=args.truto_share,
        integrations=args.integrations,
        kills_create=args.kills_create,
        kills_update=args.kills_update,
        kills_delete=args.kills_delete,
        resync_seconds=args.resync_seconds,
        error_rate=args.error_rate,
        latency_ms=args.latency_ms,
        post_commit_rate=args.post_commit_rate,
        converge_timeout=args.converge_timeout,
        update_timeout=args.update_timeout,
        delete_timeout=args.delete_timeout,
        seed=args.seed,
        cleanup=not args.no_cleanup,
        **slow,
    )
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="syncjob-chaos-"))
    print(f"operator log: {log_dir / 'operator.log'}", file=sys.stderr)
    with (
        ControlPlane() as plane,
        RunningEmulators(
            TwinMakerConfig(transition_seconds=0.5), TrutoConfig(tokens=frozenset({TOKEN}))
        ) as emulators,
        EmulatorAdmin(emulators.twinmaker_url) as twinmaker_admin,
        EmulatorAdmin(emulators.truto_url) as truto_admin,
    ):
        kubectl = Cli("kubectl", plane.env())
        kubectl.run("apply", "-f", str(CRDS_DIR))
        kubectl.run("wait", "--for=condition=Established", "crd/syncjobs.syncjob.dev")
        report = run_chaos(
            plane,
            emulators,
            twinmaker_admin,
            truto_admin,
            truto_token=TOKEN,
            log_dir=log_dir,
            params=params,
            kubectl=kubectl,
        )
    print(report.to_json())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
