#!/usr/bin/env bash
# Regenerates requirements/*.lock from pyproject.toml and requirements/dev.in in throwaway venvs.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/dev" && "$tmp/dev/bin/pip" install -q -r requirements/dev.in
{ echo "# Exact pins for CI and development (pip freeze of requirements/dev.in). Regenerate: hack/lock.sh"
  "$tmp/dev/bin/pip" freeze --exclude-editable; } > requirements/dev.lock
python3 -m venv "$tmp/rt" && "$tmp/rt/bin/pip" install -q .
{ echo "# Exact pins for the container image (pip freeze of the package alone). Regenerate: hack/lock.sh"
  "$tmp/rt/bin/pip" freeze | grep -v '^syncjob-operator'; } > requirements/runtime.lock
