#!/usr/bin/env bash
# Copies the CRDs from the repository's crds/ (the source of truth) into the Helm chart's
# crds/, byte for byte, and removes chart CRDs that no longer exist at the top.
# tests/chart/test_crds_in_sync.py fails when the two folders differ: run this after editing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
src="$repo/crds"
dst="$repo/charts/syncjob-operator/crds"
mkdir -p "$dst"
for stale in "$dst"/*.yaml; do
  [ -e "$stale" ] || continue
  [ -e "$src/$(basename "$stale")" ] || { rm -f "$stale"; echo "removed $stale" >&2; }
done
for crd in "$src"/*.yaml; do
  cp "$crd" "$dst/"
done
echo "chart CRDs in sync with crds/ ($(ls "$src"/*.yaml | wc -l) files)" >&2
