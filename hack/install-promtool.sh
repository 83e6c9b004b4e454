#!/usr/bin/env bash
# Unpacks promtool from Debian's `prometheus` package into the cache outside the repo (no
# install, no service) and prints the directory holding it. tests/chart checks the chart's alert
# rules with `promtool check rules` and `promtool test rules`. A second run returns at once.
set -euo pipefail
cache="${SYNCJOB_CACHE:-$HOME/.cache/syncjob-operator}"
version=$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')
out="$cache/promtool/${version//[^A-Za-z0-9._-]/_}"
if [ ! -x "$out/promtool" ]; then
  echo ">> fetching promtool from Debian's prometheus $version" >&2
  tmp="$out.partial"
  rm -rf "$tmp"; mkdir -p "$tmp/deb"
  (cd "$tmp/deb" && apt-get download -q "prometheus=$version" 2>&1 \
    | { grep -v "unsandboxed as root" || true; } >&2)
  dpkg-deb -x "$tmp"/deb/*.deb "$tmp/root"
  mv "$tmp/root/usr/bin/promtool" "$tmp/promtool"
  rm -rf "$tmp/deb" "$tmp/root" "$out"
  mv "$tmp" "$out"
fi
echo "$out"
