"""The `syncjob-devtools` command: the local tooling around the operator (a loopback control
plane, the TwinMaker and Truto emulators, the end-to-end demo). Not in the operator's image."""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncjob-devtools")
    verbs = parser.add_subparsers(dest="verb", required=True)
    cluster = verbs.add_parser(
        "cluster",
        help="start a local control plane (etcd, kube-apiserver, kube-controller-manager)",
    )
    cluster.add_argument("--kubeconfig-out", help="copy the admin kubeconfig here once ready")
    cluster.add_argument(
        "--once", action="store_true", help="start, report the time to ready and versions, stop"
    )
    verbs.add_parser(
        "emulators",
        help="serve the AWS IoT TwinMaker and Truto emulators on loopback",
        add_help=False,
    )
    demo = verbs.add_parser("demo", help="control plane + emulators + operator + example SyncJobs")
    demo.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    demo.add_argument(
        "--helm",
        nargs=2,
        metavar=("IMAGE_ARCHIVE", "IMAGE_REFERENCE"),
        help="install the operator with the chart onto a local node, from this image"
        " (what hack/build-image.sh prints; hack/demo.sh --helm builds it); needs root",
    )

    args, rest = parser.parse_known_args(argv)
    if args.verb == "emulators":
        from syncjob_devtools.emulators.server import main as serve_emulators

        return serve_emulators(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.verb == "cluster":
        return _serve_cluster(args.kubeconfig_out, once=args.once)
    from syncjob_devtools.demo import run_demo, run_helm_demo

    if args.helm:
        archive, reference = args.helm
        return run_helm_demo(image_archive=Path(archive), image_reference=reference, keep=args.keep)
    return run_demo(keep=args.keep)


def _serve_cluster(kubeconfig_out: str | None, *, once: bool) -> int:
    from syncjob_devtools.localcluster import ControlPlane

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    with ControlPlane() as plane:
        print(f"ready in {time.monotonic() - started:.2f}s (etcd, /readyz, controllers running)")
        if once:
            for binary in ("etcd", "kube-apiserver", "kube-controller-manager"):
                version = subprocess.run([binary, "--version"], capture_output=True, text=True)
                print(f"{binary}: {version.stdout.splitlines()[0]}")
            return 0
        if kubeconfig_out:
            shutil.copy(plane.kubeconfig, kubeconfig_out)
        print(f"control plane ready at {plane.server}", flush=True)
        print(f"export KUBECONFIG={kubeconfig_out or plane.kubeconfig}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
