#!/usr/bin/env bash
# Installs the Debian packages the node tier and the image build need, when missing, with the
# machine's own apt configuration:  hack/install-debs.sh
#   buildah, mmdebstrap           the image from the Dockerfile, without a Docker engine
#   containerd, runc              the node's CRI runtime (Debian's containerd 1.6: CRI v1, cgroup v1)
#   containernetworking-plugins   Pod networking (bridge + host-local IPAM, loopback, portmap)
#   iptables, conntrack           what kube-proxy and the kubelet program Services and NAT with
# These are system tools the kernel-facing parts need at fixed paths (CNI plugins, runc shims,
# xtables modules), so they are installed rather than unpacked into the cache. A second run
# only checks.
set -euo pipefail
packages=(buildah mmdebstrap containerd runc containernetworking-plugins iptables conntrack)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo ">> the node tier needs Debian packages: ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo ">> installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
  || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
# Debian's containerd unit may start a system containerd where an init runs; the node tier
# runs its own containerd with its own root and socket and never uses that one.
