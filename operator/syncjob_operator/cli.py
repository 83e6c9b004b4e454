"""The `syncjob-operator` command: run the operator. The local tooling (control plane,
emulators, demo) is the separate `syncjob-devtools` command, not part of the image."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="syncjob-operator",
        epilog="Local tooling (control plane, emulators, demo): the syncjob-devtools command,"
        " installed from the repository's hack/devtools.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    from syncjob_operator.runner import add_run_arguments, run

    add_run_arguments(
        verbs.add_parser("run", help="run the operator against the current kubeconfig")
    )
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
