#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager (the control plane), and kubelet,
# kube-scheduler and kube-proxy (the node tier), from the Go module proxy (module pinned by
# hack/kube-bins/go.mod + go.sum) into the cache outside the repo; and k8s-pause, the Pod
# sandbox's process, compiled statically from the same module's build/pause/linux/pause.c
# (no registry can serve registry.k8s.io/pause here).
# Prints what it builds and how far along it is; a second run returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/kube-bins"
k8s_version=$(awk '$1=="k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
key=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-12)
out="${SYNCJOB_CACHE:-$HOME/.cache/syncjob-operator}/kube-bins/k8s-$k8s_version-etcd-$etcd_version-$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
all_bins=("${bins[@]}" k8s-pause)

built=true
for b in "${all_bins[@]}"; do [ -x "$out/$b" ] || built=false; done
if $built; then
  echo "$out"
  exit 0
fi

minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
pkgs=(go.etcd.io/etcd/server/v3)
for b in "${bins[@]:1}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done

. "$here/lib/go-build.sh"
cd "$mod"
echo ">> kubernetes $k8s_version and etcd $etcd_version (cold build: about 10 min on 2 cores)" >&2
go_build_progress "$out" "$ldflags" "${pkgs[@]}"
tmp="$out.partial"
mv "$tmp/server" "$tmp/etcd"  # go names a /vN module's main package after the element before /vN
pause_src="$(go env GOMODCACHE)/k8s.io/kubernetes@$k8s_version/build/pause/linux/pause.c"
gcc -Os -static -DVERSION="$k8s_version" -o "$tmp/k8s-pause" "$pause_src"
for b in "${all_bins[@]}"; do [ -x "$tmp/$b" ] || { echo ">> $b missing after build" >&2; exit 1; }; done
rm -rf "$out"; mv "$tmp" "$out"
echo ">> built in ${BUILD_SECONDS}s: $out" >&2
echo "$out"
