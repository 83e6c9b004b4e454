#!/usr/bin/env bash
# The README's demo command (make demo): everything end to end on local defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(hack/bootstrap.sh)"
exec syncjob-operator demo "$@"
