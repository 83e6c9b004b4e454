#!/usr/bin/env bash
# The README's test command (make test): bootstrap, lint, type-check, then every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
# Assign first: a failing bootstrap inside eval "$(...)" would not stop set -e.
exports=$(hack/bootstrap.sh)
eval "$exports"
echo ">> ruff" && ruff check operator tests hack && ruff format --check operator tests hack
echo ">> mypy --strict" && mypy
[ "${1:-}" = "--lint-only" ] && exit 0
echo ">> pytest"
exec pytest "$@"
