#!/usr/bin/env bash
# The README's demo command (make demo): everything end to end on local defaults.
#   hack/demo.sh [--keep]          the operator as a process beside the control plane
#   hack/demo.sh --helm [--keep]   the image built from the Dockerfile, installed with the
#                                  chart onto a local node (kubelet + containerd; needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
# Assign first: a failing bootstrap inside eval "$(...)" would not stop set -e.
exports=$(hack/bootstrap.sh)
eval "$exports"
args=()
helm=false
for arg in "$@"; do
  if [ "$arg" = "--helm" ]; then helm=true; else args+=("$arg"); fi
done
if $helm; then
  built=$(hack/build-image.sh)
  args+=(--helm "$(sed -n 1p <<<"$built")" "$(sed -n 2p <<<"$built")")
fi
exec syncjob-devtools demo "${args[@]}"
