# Shared by hack/build-*.sh: `go build -v` of pinned packages from a wrapper module, with
# a progress line every 100 packages, into "$out" through "$out.partial".
#   go_build_progress OUT LDFLAGS PKG...     (run from the wrapper module's directory)
go_build_progress() {
  local out=$1 ldflags=$2
  shift 2
  export CGO_ENABLED=0 GOFLAGS=-mod=readonly
  echo ">> downloading modules for $(basename "$out")" >&2
  go mod download >&2
  local total
  total=$(go list -deps "$@" | wc -l)
  echo ">> compiling about $total packages (cached by Go afterwards)" >&2
  local tmp="$out.partial" start=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  # go build -v names each package as it compiles; turn that into a progress line.
  go build -v -trimpath -ldflags "$ldflags" -o "$tmp/" "$@" 2>&1 | {
    local n=0 line
    while IFS= read -r line; do
      case "$line" in
        *' '*|*:*) echo "$line" >&2 ;;  # compiler errors and warnings pass through
        *) n=$((n + 1))
           if [ $((n % 100)) -eq 0 ]; then
             printf '>> [%d/%d packages, %ds] %s\n' "$n" "$total" $((SECONDS - start)) "$line" >&2
           fi ;;
      esac
    done
  }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo ">> build failed" >&2; return 1; }
  BUILD_SECONDS=$((SECONDS - start))
}
