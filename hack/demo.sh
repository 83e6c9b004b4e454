#!/usr/bin/env bash
# The README's demo command (make demo): everything end to end on local defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
# Assign first: a failing bootstrap inside eval "$(...)" would not stop set -e.
exports=$(hack/bootstrap.sh)
eval "$exports"
exec syncjob-devtools demo "$@"
