#!/bin/sh
# Installs syncjob-operator into a virtualenv the way the container image does, in two steps
# so that Docker caches the dependency layer apart from the source:
#   hack/install-package.sh deps    VENV SRC   exact pins of SRC/requirements/runtime.lock
#   hack/install-package.sh package VENV SRC   SRC itself, --no-deps: nothing beyond the lock
# The Dockerfile runs both.
set -eu
step=$1
venv=$2
src=${3:-.}
pip() { "$venv/bin/python" -m pip --disable-pip-version-check --no-input "$@"; }
case "$step" in
  deps)
    "${PYTHON:-python3}" -m venv "$venv"
    # --no-deps: the lock must be complete; `pip check` below proves it is consistent.
    pip install --no-deps --require-virtualenv -r "$src/requirements/runtime.lock"
    ;;
  package)
    pip install --no-deps --require-virtualenv "$src"
    pip check
    ;;
  *)
    echo "usage: $0 deps|package VENV [SRC]" >&2
    exit 2
    ;;
esac
