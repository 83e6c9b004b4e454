#!/usr/bin/env bash
# Builds Argo CD's multi-call binary from the Go module proxy (pinned by hack/argocd/go.mod +
# go.sum) into the cache outside the repo, next to its CRDs and base config from the same
# module, and unpacks Redis from Debian's packages beside it. Prints the directory; a second
# run returns at once. The binary picks its component from argv[0]: the directory holds
# argocd-repo-server and argocd-application-controller links to it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/argocd"
version=$(awk '$1=="github.com/argoproj/argo-cd/v3" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
cache="${SYNCJOB_CACHE:-$HOME/.cache/syncjob-operator}"
out="$cache/argocd/argocd-$version-$key"
redis_pkgs=(redis-server redis-tools libjemalloc2 liblzf1)
redis="$cache/redis/$(printf '%s\n' "${redis_pkgs[@]}" | sha256sum | cut -c1-12)"

if [ ! -x "$redis/usr/bin/redis-server" ]; then
  # Unpacked, not installed: no root, no service, nothing outside the cache.
  echo ">> fetching ${redis_pkgs[*]} from Debian's packages" >&2
  rm -rf "$redis.partial"; mkdir -p "$redis.partial/debs"
  (cd "$redis.partial/debs" && apt-get download -q "${redis_pkgs[@]}" 2>&1 | { grep -v "unsandboxed as root" || true; } >&2)
  for deb in "$redis.partial"/debs/*.deb; do dpkg-deb -x "$deb" "$redis.partial"; done
  rm -rf "$redis.partial/debs" "$redis"; mv "$redis.partial" "$redis"
fi

if [ ! -x "$out/argocd" ]; then
  . "$here/lib/go-build.sh"
  cd "$mod"
  echo ">> Argo CD $version (cold build: about 12 min on 2 cores)" >&2
  go_build_progress "$out" "-s -w -X github.com/argoproj/argo-cd/v3/common.version=${version#v}" \
    github.com/argoproj/argo-cd/v3/cmd
  tmp="$out.partial"
  mv "$tmp/cmd" "$tmp/argocd"
  for name in argocd-repo-server argocd-application-controller; do ln -s argocd "$tmp/$name"; done
  src=$(go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)
  mkdir -p "$tmp/manifests"
  cp "$src"/manifests/crds/{application,applicationset,appproject}-crd.yaml \
     "$src"/manifests/base/config/argocd-{cm,cmd-params-cm,rbac-cm,secret,ssh-known-hosts-cm,tls-certs-cm,gpg-keys-cm}.yaml \
     "$tmp/manifests/"
  rm -rf "$out"; mv "$tmp" "$out"
  echo ">> built in ${BUILD_SECONDS}s: $out" >&2
fi
# The Redis libraries are found through the wrapper, not the system's library path.
cat > "$out/redis-server" <<SH
#!/bin/sh
LD_LIBRARY_PATH='$redis/usr/lib/x86_64-linux-gnu' exec '$redis/usr/bin/redis-server' "\$@"
SH
chmod +x "$out/redis-server"
echo "$out"
