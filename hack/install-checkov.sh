#!/usr/bin/env bash
# Installs checkov (the static linter tests/chart runs on the rendered Helm chart) into a venv
# of its own under the cache, keyed by hack/checkov.lock and the interpreter, and prints a
# directory that holds only the `checkov` command, for PATH. checkov pins many libraries
# (boto3 among them) at versions that clash with requirements/dev.lock, hence its own venv.
# Progress goes to stderr; a warm run prints the directory at once.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache="${SYNCJOB_CACHE:-$HOME/.cache/syncjob-operator}"
py=${PYTHON:-python3}
lock="$repo/hack/checkov.lock"
key=$(cat "$lock" <("$py" -VV) | sha256sum | cut -c1-12)
version=$(awk -F'==' '$1=="checkov" {print $2}' "$lock")
home="$cache/checkov-$version-$key"
if [ ! -x "$home/bin/checkov" ]; then
  echo ">> installing checkov $version into $home (about a minute)" >&2
  rm -rf "$home.partial"
  "$py" -m venv "$home.partial/venv"
  "$home.partial/venv/bin/pip" install -q --disable-pip-version-check -r "$lock" >&2
  mkdir -p "$home.partial/bin"
  rm -rf "$home"
  mv "$home.partial" "$home"
  # venv scripts carry the venv's absolute path: rewrite it after the move.
  grep -rlI "$home.partial" "$home/venv/bin" | xargs -r sed -i "s#$home.partial#$home#g"
  ln -s ../venv/bin/checkov "$home/bin/checkov"
fi
echo "$home/bin"
