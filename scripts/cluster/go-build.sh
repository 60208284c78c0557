# Sourced by scripts/cluster/toolchain.sh and scripts/kind/toolchain.sh: the Go build settings and helpers
# both use. Expects CACHE (the cache folder, locked here), CACHE_ROOT, BIN and log(); WRAPPER_PREFIX names the
# wrapper modules (mcstatbot.local/<prefix>/<name>).
# shellcheck shell=bash
WRAPPER_PREFIX=${WRAPPER_PREFIX:-cluster-build}

# One build at a time per cache folder (CI and a developer may start it together).
exec 9>"$CACHE/.lock"
flock 9

export GOFLAGS="-trimpath -mod=mod"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOCACHE="${GOCACHE:-$CACHE_ROOT/go-build}"
TIMES="$CACHE/build-times.txt"
touch "$TIMES"

# build NAME DIR PKG [LDFLAGS]: `go build` PKG inside the wrapper module DIR into $BIN/NAME, timed.
build() {
  local name=$1 dir=$2 pkg=$3 ldflags=${4:-}
  [ -x "$BIN/$name" ] && return 0
  log "building $name ($pkg)"
  local start end
  start=$(date +%s)
  (cd "$dir" && nice -n 19 go build -ldflags "-s -w $ldflags" -o "$BIN/$name.tmp" "$pkg")
  mv "$BIN/$name.tmp" "$BIN/$name"
  end=$(date +%s)
  printf '%s %ss\n' "$name" "$((end - start))" >>"$TIMES"
  log "$name built in $((end - start))s"
}

# wrapper DIR MODULE@VERSION [go.mod lines...]: a module that requires MODULE and carries its replace lines.
wrapper() {
  local dir=$1 req=$2
  shift 2
  mkdir -p "$dir"
  if [ ! -f "$dir/go.mod" ]; then
    {
      echo "module mcstatbot.local/$WRAPPER_PREFIX/$(basename "$dir")"
      echo
      echo "go 1.26"
      printf '%s\n' "$@"
      echo
      echo "require ${req%@*} ${req#*@}"
    } >"$dir/go.mod.tmp"
    mv "$dir/go.mod.tmp" "$dir/go.mod"
  fi
}

# go_get DIR PKG...: resolve PKG's requirements in the wrapper module (the module graph, not a build).
go_get() {
  local dir=$1
  shift
  (cd "$dir" && nice -n 19 go get "$@" >/dev/null)
}
