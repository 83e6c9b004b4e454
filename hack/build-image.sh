#!/usr/bin/env bash
# Builds the repository's Dockerfile, unchanged, into an image without a Docker engine or a
# container registry, and writes it as an archive that `ctr -n k8s.io images import` loads:
#   hack/build-image.sh [--tag TAG]
# prints the archive's path and the image reference, docker.io/library/syncjob-operator:TAG
# (the name the kubelet asks for when the chart's image.repository is `syncjob-operator`).
# Default TAG: <the chart's appVersion>-<input key>.
#   - base: the Dockerfile's PYTHON_IMAGE comes from Docker Hub; here a Debian rootfs made by
#     mmdebstrap (python3, python3-venv; no docs, man pages or translations) stands in for it,
#     as a local image, cached on its own key
#   - image: `buildah bud` of the Dockerfile with that base, chroot isolation, in a buildah
#     storage of its own under the cache; the RUN steps get the machine's CA bundle mounted
#     read-only over the base's (Debian's pip reads that file), so pip trusts what the machine
#     trusts and nothing of it lands in the image
# The result is cached on a hash of the inputs: the Dockerfile and the build context that
# .dockerignore lets through, as they are on disk, the base's key and the tag. Needs root.
# Progress goes to stderr (the full build log: $SYNCJOB_CACHE/image/build.log); a second run
# with the same inputs returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache="${SYNCJOB_CACHE:-$HOME/.cache/syncjob-operator}"
work="$cache/image"
name=docker.io/library/syncjob-operator
log() { echo ">> $*" >&2; }
die() { echo ">> build-image: $*" >&2; exit 1; }

tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag=$2; shift 2 ;;
    --tag=*) tag=${1#--tag=}; shift ;;
    *) die "unknown argument '$1'; usage: hack/build-image.sh [--tag TAG]" ;;
  esac
done
if [ -n "$tag" ] && ! [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  die "'$tag' is not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"
fi

"$here/install-debs.sh"

# The base: what mmdebstrap makes, named by its own key. passwd: the final stage's groupadd.
# resolv.conf, hostname and hosts are left empty for the runtime to fill (mmdebstrap copies
# the machine's; buildah would add empty ones to the image's own layer).
suite=bookworm
base_packages=(python3 python3-venv ca-certificates passwd)
# shellcheck disable=SC2016  # the hook's "$1" (the rootfs) is for mmdebstrap to expand
mmdebstrap_args=(--variant=minbase --format=tar "--include=$(IFS=,; echo "${base_packages[*]}")"
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --customize-hook='for f in resolv.conf hostname hosts; do : > "$1/etc/$f"; done')
arch=$(dpkg --print-architecture)
base_key=$(echo "$suite $arch ${mmdebstrap_args[*]}" | sha256sum | cut -c1-12)
base_image="localhost/syncjob-python-base:$suite-$base_key"

# The inputs: the Dockerfile and the build context, the paths .dockerignore's allowlist lets
# through (its "!" lines) minus __pycache__, as `buildah bud` will see them.
inputs=(Dockerfile .dockerignore)
[ -f "$repo/.dockerignore" ] || die "$repo/.dockerignore is missing"
while IFS= read -r f; do inputs+=("${f%/}"); done < <(sed -n 's/^!//p' "$repo/.dockerignore")
for f in "${inputs[@]}"; do
  [ -e "$repo/$f" ] || die "build input $f is missing from $repo"
done
input_key=$(
  cd "$repo"
  files=$(find "${inputs[@]}" -name __pycache__ -prune -o ! -type d ! -name '*.pyc' -print \
    | LC_ALL=C sort)
  { echo "base $base_image"
    tr '\n' '\0' <<<"$files" | xargs -0 stat -c '%a %n'
    tr '\n' '\0' <<<"$files" | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
)
if [ -z "$tag" ]; then
  app_version=$(awk -F'"' '/^appVersion:/ {print $2}' "$repo/charts/syncjob-operator/Chart.yaml")
  [ -n "$app_version" ] || die "no appVersion in charts/syncjob-operator/Chart.yaml"
  tag="$app_version-$input_key"
fi
reference="$name:$tag"
key=$(echo "$input_key $reference" | sha256sum | cut -c1-12)
archive="$work/syncjob-operator-$key.tar"

finish() {
  touch "$archive"  # most recently used: the pruning below keeps it
  echo "$archive"
  echo "$reference"
  exit 0
}
[ -s "$archive" ] && finish

[ "$(id -u)" -eq 0 ] || die "needs root (buildah with chroot isolation, overlay storage); run as root"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || die "$tool is missing (hack/install-debs.sh installs it)"
done
mkdir -p "$work"
# One image build at a time per cache: concurrent runs would build into the same files.
exec 9>"$work/.lock"
if ! flock -n 9; then
  log "waiting for another image build in $work (lock $work/.lock, at most 20 min)"
  flock -w 1200 9 || die "timed out waiting for the lock $work/.lock"
fi
[ -s "$archive" ] && finish  # built meanwhile

# The project's own buildah storage: no image, layer or container outside the cache.
b=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay)
ctr=""
trap '[ -z "$ctr" ] || "${b[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
start=$SECONDS

if ! "${b[@]}" inspect --type image "$base_image" >/dev/null 2>&1; then
  log "base $base_image: mmdebstrap $suite with ${base_packages[*]}"
  t=$SECONDS
  tmp="$work/base-$base_key.partial"
  rm -rf "$tmp"; mkdir -p "$tmp"
  mmdebstrap --quiet "${mmdebstrap_args[@]}" "$suite" "$tmp/rootfs.tar" >&2 \
    || die "mmdebstrap failed (it needs the Debian archive through apt)"
  log "base rootfs: $(du -m "$tmp/rootfs.tar" | cut -f1) MiB in $((SECONDS - t))s; committing"
  ctr=$("${b[@]}" from --name "syncjob-base-$base_key" scratch)
  "${b[@]}" add "$ctr" "$tmp/rootfs.tar" / >/dev/null
  # What the official python images set, and the Dockerfile's ENV PATH=/opt/venv/bin:$PATH extends.
  "${b[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  "${b[@]}" commit --quiet --rm "$ctr" "$base_image" >/dev/null
  ctr=""
  rm -rf "$tmp"
  # Bases of other keys are unused from now on.
  "${b[@]}" images --noheading --format '{{.Name}}:{{.Tag}}' \
    | grep '^localhost/syncjob-python-base:' | grep -vxF "$base_image" \
    | xargs -r "${b[@]}" rmi >/dev/null || true
  log "base $base_image built in $((SECONDS - t))s"
fi

log "image $reference: buildah bud of the Dockerfile on $base_image"
t=$SECONDS
mounts=()
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] && mounts+=(--volume "$ca:$ca:ro")
if ! "${b[@]}" bud --isolation chroot --network host --pull=never \
  --build-arg "PYTHON_IMAGE=$base_image" "${mounts[@]}" \
  --file "$repo/Dockerfile" --tag "$reference" "$repo" 2>&1 | tee "$work/build.log" \
  | while IFS= read -r line; do
      case "$line" in *"STEP "[0-9]*) log "[$((SECONDS - t))s] $line" ;; esac
    done; then
  tail -n 30 "$work/build.log" >&2
  "${b[@]}" rm --all >/dev/null 2>&1 || true  # what the failed stage left (under our lock)
  die "buildah bud of the Dockerfile failed (above: the end of $work/build.log)"
fi
size=$("${b[@]}" images --noheading --format '{{.Size}}' "$reference")
log "image built in $((SECONDS - t))s: $size"
t=$SECONDS
rm -f "$archive.partial"
"${b[@]}" push --quiet "$reference" "docker-archive:$archive.partial:$reference" >&2
# The archive is the product; the storage keeps only the base.
"${b[@]}" rmi "$reference" >/dev/null
mv "$archive.partial" "$archive"
log "archive $(du -m "$archive" | cut -f1) MiB written in $((SECONDS - t))s; total $((SECONDS - start))s"
# Keep the three most recently used archives.
find "$work" -maxdepth 1 -name 'syncjob-operator-*.tar' -printf '%T@ %p\n' | sort -rn \
  | tail -n +4 | cut -d' ' -f2- | xargs -r rm -f
finish
